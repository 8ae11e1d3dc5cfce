"""Server mode: the simulator on a real socket, with a ticker so tasks progress in real time."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

if TYPE_CHECKING:
    from .simulator import Simulator

log = logging.getLogger("arksim")
TICK_SECONDS = 0.5


class _QuietHandler(WSGIRequestHandler):
    """Access lines go to the `arksim.access` logger at DEBUG, not werkzeug's at INFO."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        logging.getLogger("arksim.access").debug('"%s" %s %s', self.requestline, code, size)


class ServerHandle:
    def __init__(self, sim: Simulator, server: BaseWSGIServer, url: str) -> None:
        self.sim = sim
        self.url = url
        self.base_url = f"{url}/api/v3"
        self._server = server
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                             name="arksim-http", daemon=True),
            threading.Thread(target=self._tick_forever, name="arksim-ticker", daemon=True),
        ]  # fmt: skip
        for thread in self._threads:
            thread.start()

    def _tick_forever(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            try:
                self.sim.tick()
            except Exception:  # the ticker must outlive any bug in one tick
                log.exception("tick failed")

    def shutdown(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(5)
        self.sim.stop_background_callbacks()

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()


def serve(
    sim: Simulator,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    realtime: bool = True,
    public_base_url: str | None = None,
) -> ServerHandle:
    server = make_server(host, port, sim.wsgi_app, threaded=True, request_handler=_QuietHandler)
    bound_port = server.socket.getsockname()[1]
    url_host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # a wildcard is not an address
    url = f"http://[{url_host}]:{bound_port}" if ":" in url_host else f"http://{url_host}:{bound_port}"
    # Output URLs must point where clients reach the server (e.g. a docker service name).
    sim.public_base_url = (public_base_url or url).rstrip("/")
    if realtime:
        sim.clock.run()
    sim.start_background_callbacks()
    return ServerHandle(sim, server, url)
