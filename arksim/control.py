"""The simulator's own control plane under /_sim/, for tests driving a sim in another process.

No Ark key is needed: these paths only exist on the simulator and are never part of
Ark's API. Bad input answers with the same error envelope as the API.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from .errors import ArkHttpError

if TYPE_CHECKING:
    from .simulator import Simulator

RULES = [
    Rule("/_sim/stats", endpoint="sim_stats", methods=["GET"]),
    Rule("/_sim/stats/reset", endpoint="sim_stats_reset", methods=["POST"]),
    Rule("/_sim/clock", endpoint="sim_clock", methods=["GET", "POST"]),
    Rule("/_sim/tick", endpoint="sim_tick", methods=["POST"]),
    Rule("/_sim/faults", endpoint="sim_faults", methods=["GET", "POST", "DELETE"]),
    Rule("/_sim/tasks", endpoint="sim_tasks", methods=["POST"]),
    Rule("/_sim/tasks/<task_id>/outputs", endpoint="sim_outputs", methods=["GET"]),
]


def _reply(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, mimetype="application/json")


def _body(request: Request) -> dict[str, Any]:
    raw = request.get_data(cache=False)
    try:
        body = json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError):
        raise ArkHttpError(400, "InvalidParameter", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ArkHttpError(400, "InvalidParameter", "The request body must be a JSON object.")
    return body


def handle(sim: Simulator, endpoint: str, request: Request, **args: str) -> Response:
    try:
        return _HANDLERS[endpoint](sim, request, **args)
    except (TypeError, ValueError) as error:
        raise ArkHttpError(400, "InvalidParameter", str(error)) from None
    except KeyError as error:
        raise ArkHttpError(404, "NotFound", str(error.args[0] if error.args else error)) from None


def _stats(sim: Simulator, request: Request) -> Response:
    return _reply(sim.stats())


def _stats_reset(sim: Simulator, request: Request) -> Response:
    sim.reset_stats()
    return _reply(sim.stats())


def _clock(sim: Simulator, request: Request) -> Response:
    if request.method == "POST":
        body = _body(request)
        if "advance" in body:
            sim.advance(float(body["advance"]))
        elif "set" in body:
            sim.clock.set(float(body["set"]))
            sim.tick()
        else:
            raise ValueError('send {"advance": seconds} or {"set": unix_seconds}')
    return _reply({"now": sim.clock.now()})


def _tick(sim: Simulator, request: Request) -> Response:
    sim.tick()
    return _reply({"now": sim.clock.now()})


def _faults(sim: Simulator, request: Request) -> Response:
    if request.method == "POST":
        body = _body(request)
        allowed = {"endpoint", "kind", "times", "retry_after", "latency", "status"}
        unknown = set(body) - allowed
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        if "endpoint" not in body or "kind" not in body:
            raise ValueError("a fault needs `endpoint` and `kind`")
        sim.faults.inject(str(body.pop("endpoint")), str(body.pop("kind")), **body)
    elif request.method == "DELETE":
        sim.faults.clear()
    return _reply({"faults": sim.faults.pending()})


def _tasks(sim: Simulator, request: Request) -> Response:
    return _reply({"id": sim.add_task(**_body(request))})


def _outputs(sim: Simulator, request: Request, task_id: str) -> Response:
    return _reply(sim.outputs_info(task_id))


_HANDLERS = {
    "sim_stats": _stats,
    "sim_stats_reset": _stats_reset,
    "sim_clock": _clock,
    "sim_tick": _tick,
    "sim_faults": _faults,
    "sim_tasks": _tasks,
    "sim_outputs": _outputs,
}
