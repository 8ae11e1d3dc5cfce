"""`python -m arksim` (and `manage.py arksim`): run the simulator as a server until Ctrl-C / SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import state
from .demo import Trickle
from .simulator import Simulator


def _rate(value: str) -> float | None:
    """A rate in requests per second; 0 or 'none' disables the limit."""
    if value.lower() in ("none", "off", "0", "0.0"):
        return None
    try:
        rate = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a rate: {value!r}") from None
    if rate < 0:
        raise argparse.ArgumentTypeError("a rate cannot be negative")
    return rate


def _non_negative(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return number


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return number


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8765, help="port to listen on (0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--api-key", dest="api_keys", action="append", metavar="KEY",
                        help="an accepted API key (repeatable; default: sim-key)")  # fmt: skip
    parser.add_argument("--queue-seconds", type=_non_negative, default=5.0, help="time a task stays queued")
    parser.add_argument("--run-seconds", type=_non_negative, default=20.0, help="time a task runs")
    parser.add_argument("--seed-demo", action="store_true", help="start with a week of demo tasks")
    parser.add_argument("--demo-count", type=int, default=60, help="how many demo tasks --seed-demo makes")
    parser.add_argument("--demo-trickle", type=_non_negative, default=0.0, metavar="SECONDS",
                        help="create a random task every SECONDS (0 = off)")  # fmt: skip
    parser.add_argument("--list-rate", type=_rate, default=1.0, metavar="R",
                        help="list requests per second per key (0/none = unlimited)")  # fmt: skip
    parser.add_argument("--get-rate", type=_rate, default=20.0, metavar="R")
    parser.add_argument("--delete-rate", type=_rate, default=20.0, metavar="R")
    parser.add_argument("--output-bytes", type=int, default=None, metavar="N",
                        help="pad every video output to exactly N bytes (benchmarks)")  # fmt: skip
    parser.add_argument("--public-base-url", default=None,
                        help="base of output URLs when clients reach the sim under another name")  # fmt: skip
    parser.add_argument("--quoted-timestamps", action="store_true",
                        help="send created_at/updated_at as numeric strings")  # fmt: skip
    parser.add_argument("--list-order", choices=("newest", "oldest", "shuffled"), default="newest",
                        help="order of list answers (Ark documents none; shuffled: new order every call)")  # fmt: skip
    parser.add_argument("--max-task-ids", type=_positive_int, default=None, metavar="N",
                        help="answer 400 InvalidParameter to more than N filter.task_ids in one call")  # fmt: skip
    parser.add_argument("--max-request-line", type=_positive_int, default=None, metavar="BYTES",
                        help="answer 414 to a list request line longer than BYTES")  # fmt: skip
    parser.add_argument("--refused-delete-status", type=int, choices=(400, 403, 409), default=400,
                        help="HTTP status of a refused DELETE (running or cancelled task)")  # fmt: skip
    parser.add_argument("--key-group", dest="key_groups", action="append", metavar="KEY,KEY,...",
                        type=lambda value: [key for key in value.split(",") if key],
                        help="keys of one account: they see the same tasks (repeatable)")  # fmt: skip
    parser.add_argument("--same-second-visible", action="store_true",
                        help="show a task in the second it was created (Ark's window is open at T)")  # fmt: skip
    parser.add_argument("--rng-seed", type=int, default=None, help="seed for ids and demo data")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    parser.add_argument("--state-file", default=None, metavar="PATH",
                        help="keep the tasks in this file: a restart continues (and skips --seed-demo)")  # fmt: skip


def run(options: dict[str, Any], *, stop: threading.Event | None = None, out: Any = None) -> int:
    """Start the server from parsed options and block until `stop` is set or a signal arrives."""
    out = out or sys.stdout
    logging.basicConfig(level=logging.DEBUG if options.get("verbose") else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")  # fmt: skip
    try:
        sim = Simulator(
            api_keys=tuple(options.get("api_keys") or ("sim-key",)),
            queue_seconds=options["queue_seconds"],
            run_seconds=options["run_seconds"],
            list_rate_per_second=options["list_rate"],
            get_rate_per_second=options["get_rate"],
            delete_rate_per_second=options["delete_rate"],
            rng_seed=options.get("rng_seed"),
            output_bytes=options.get("output_bytes"),
            quoted_timestamps=options.get("quoted_timestamps", False),
            list_order=options.get("list_order", "newest"),
            max_task_ids=options.get("max_task_ids"),
            max_request_line=options.get("max_request_line"),
            refused_delete_status=options.get("refused_delete_status", 400),
            key_groups=options.get("key_groups") or (),
            exact_window=not options.get("same_second_visible", False),
        )
    except ValueError as error:
        print(f"arksim: {error}", file=sys.stderr)
        return 2
    state_file = Path(options["state_file"]) if options.get("state_file") else None
    restored = state_file is not None and state.load(sim, state_file)
    if options.get("seed_demo") and not restored:
        sim.seed_demo(count=options.get("demo_count", 60))
    try:
        handle = sim.serve(options["host"], options["port"], public_base_url=options.get("public_base_url"))
    except OSError as error:
        print(f"arksim: cannot listen on {options['host']}:{options['port']}: {error}", file=sys.stderr)
        return 1
    trickle = Trickle(sim, options["demo_trickle"]).start() if options.get("demo_trickle") else None
    saver = state.Saver(sim, state_file).start() if state_file else None
    print(f"arksim listening on {handle.url}  (Ark base URL: {handle.base_url})", file=out, flush=True)

    stop = stop or threading.Event()
    previous = _install_signal_handlers(stop)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        _restore_signal_handlers(previous)
        if trickle:
            trickle.stop()
        if saver:
            saver.stop()
        handle.shutdown()
    print("arksim stopped", file=out, flush=True)
    return 0


def _install_signal_handlers(stop: threading.Event) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, lambda *_: stop.set())
    return previous


def _restore_signal_handlers(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="arksim", description="A simulator of Volcengine Ark's task API.")
    add_arguments(parser)
    return run(vars(parser.parse_args(argv)))
