"""The WSGI app: Ark's HTTP surface under /api/v3, presigned outputs, and the /_sim control plane."""

from __future__ import annotations

import hmac
import json
import logging
import re
import socket
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestedRangeNotSatisfiable
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response
from werkzeug.wsgi import wrap_file

from . import control, errors, outputs
from .errors import ArkHttpError, bad_param
from .faults import ConnectionDropped, Fault
from .ids import request_id
from .tasks import STATUSES
from .validation import SERVICE_TIERS

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from .simulator import Simulator

log = logging.getLogger("arksim")

TASKS_PATH = "/api/v3/contents/generations/tasks"
PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX = 10, 500
DIGITS = re.compile(r"^\d+$")

URL_MAP = Map(
    [
        Rule(TASKS_PATH, endpoint="tasks", methods=["GET", "POST"]),
        Rule(f"{TASKS_PATH}/<task_id>", endpoint="task", methods=["GET", "DELETE"]),
        Rule("/_outputs/<task_id>/<name>", endpoint="output", methods=["GET"]),
        *control.RULES,
    ],
    strict_slashes=False,
)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return Response(body, status=status, headers=headers, mimetype="application/json")


class SimApp:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        rid = request_id(self.sim.clock.now())
        fault: Fault | None = None
        try:
            rule_endpoint, args = URL_MAP.bind_to_environ(environ).match()
            api_endpoint = _api_endpoint(rule_endpoint, request.method)
            if api_endpoint:
                self.sim.count(api_endpoint)
                fault = self.sim.faults.take(api_endpoint)
                if fault is not None:
                    self._start_fault(fault, api_endpoint)
            if api_endpoint == "list":
                _check_request_line(self.sim.max_request_line, environ)
            if rule_endpoint.startswith("sim_"):
                response = control.handle(self.sim, rule_endpoint, request, **args)
            else:
                self.sim.tick()
                response = getattr(self, f"on_{rule_endpoint}")(request, **args)
        except ConnectionDropped:
            return self._drop(environ, start_response)
        except ArkHttpError as error:
            response = json_response(error.body(rid), error.status, error.headers)
        except RequestedRangeNotSatisfiable as error:
            response = self._http_error(error, rid, "InvalidRange", "The requested range is not satisfiable.")
            if error.length is not None:
                response.headers["Content-Range"] = f"bytes */{error.length}"
        except MethodNotAllowed as error:
            response = self._http_error(
                error, rid, "MethodNotAllowed", f"The method {request.method} is not allowed for this path."
            )
            response.headers["Allow"] = ", ".join(error.valid_methods or [])
        except NotFound as error:
            response = self._http_error(error, rid, "NotFound.Path", f"No such path: {request.path}.")
        except HTTPException as error:
            response = self._http_error(error, rid, "InvalidRequest", error.description or "Bad request.")
        except Exception:  # a bug in the simulator must still answer with the envelope
            log.exception("unhandled error on %s %s", request.method, request.path)
            internal = ArkHttpError(500, "InternalServiceError", "The simulator hit an internal error.")
            response = json_response(internal.body(rid), 500)

        response.headers["x-request-id"] = rid
        client_request_id = request.headers.get("X-Client-Request-Id")
        if client_request_id:
            response.headers["X-Client-Request-Id"] = client_request_id
        if fault is not None and fault.kind in ("truncate", "bad_length"):
            return self._mutilate(response, fault.kind, environ, start_response)
        return response(environ, start_response)

    # ------------------------------------------------------------- faults

    def _start_fault(self, fault: Fault, endpoint: str) -> None:
        self.sim.count("faults")
        if fault.delay:
            time.sleep(fault.delay)
        if fault.kind == "429":
            self.sim.count(f"{endpoint}_429")
            raise ArkHttpError(
                429,
                errors.RATE_LIMITED,
                "The request rate exceeded the account's limit (injected fault); retry later.",
                headers={"Retry-After": str(max(1, fault.retry_after))},
            )
        if fault.kind == "500":
            raise ArkHttpError(
                fault.status or 500,
                "InternalServiceError",
                "The service encountered an unexpected internal error.",
            )
        if fault.kind == "drop":
            raise ConnectionDropped()

    def _drop(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        sock = environ.get("werkzeug.socket")
        if sock is None:  # in-process: SimTransport turns this into httpx.RemoteProtocolError
            raise ConnectionDropped()
        try:
            sock.shutdown(socket.SHUT_RDWR)  # the client sees the connection close, no answer
        except OSError:
            pass
        start_response("500 Internal Server Error", [("Content-Length", "0"), ("Connection", "close")])
        return []

    def _mutilate(
        self, response: Response, kind: str, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        length = response.content_length
        if length is None:
            return response(environ, start_response)
        if kind == "truncate":
            send, announce = length // 2, length
        else:
            send, announce = length, length + max(1, length // 2)
        response.headers["Content-Length"] = str(announce)
        # In server mode the connection must end, or a keep-alive client would wait forever.
        response.headers["Connection"] = "close"
        return _limited(response(environ, start_response), send)

    def _http_error(self, error: HTTPException, rid: str, code: str, message: str) -> Response:
        status = error.code or 400
        return json_response(ArkHttpError(status, code, message).body(rid), status)

    # ------------------------------------------------------------- Ark API

    def _api_key(self, request: Request) -> str:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and token:
            for key in self.sim.api_keys:
                if hmac.compare_digest(key.encode(), token.encode()):
                    return key
        raise ArkHttpError(
            401,
            "AuthenticationError",
            "The API key in the request is missing or invalid (expected `Authorization: Bearer <key>`).",
        )

    def on_tasks(self, request: Request) -> Response:
        key = self._api_key(request)
        if request.method == "POST":
            task_id = self.sim.create_task(_json_body(request), api_key=key)
            return json_response({"id": task_id})
        self.sim.check_rate(key=key, endpoint="list")
        query = _list_query(request)
        limit = self.sim.max_task_ids
        if limit is not None and len(query["task_ids"]) > limit:
            raise bad_param("filter.task_ids", f"`filter.task_ids` accepts at most {limit} ids per request.")
        model = query["model"]
        if model is not None and model not in self.sim.endpoints:
            # filter.model takes the endpoint id the task was sent to, never a model name.
            raise errors.endpoint_not_found(model, "filter.model")
        return json_response(self.sim.list_tasks(key, **query))

    def on_task(self, request: Request, task_id: str) -> Response:
        key = self._api_key(request)
        if request.method == "DELETE":
            self.sim.check_rate(key=key, endpoint="delete")
            self.sim.delete_task(key, task_id)
            return json_response({})
        self.sim.check_rate(key=key, endpoint="get")
        return json_response(self.sim.get_task(key, task_id))

    def on_output(self, request: Request, task_id: str, name: str) -> Response:
        spec = self.sim.output_spec(task_id)
        output = outputs.OUTPUT_BY_FILE.get(name)
        if spec is None or output is None or output not in spec.outputs():
            raise ArkHttpError(404, "NoSuchKey", "The specified output does not exist.")
        expires = request.args.get("expires", "")
        given = request.args.get("sig", "")
        secret = self.sim.output_url_secret()
        if not DIGITS.match(expires) or not outputs.signature_ok(secret, task_id, name, int(expires), given):
            raise ArkHttpError(403, "SignatureDoesNotMatch", "The URL signature does not match.")
        if self.sim.clock.now() >= int(expires):
            raise ArkHttpError(
                403,
                "AccessDenied",
                "Request has expired: output URLs are valid for 24 hours after the task succeeded.",
            )
        blob = outputs.blob_for(spec, output)
        response = Response(
            wrap_file(request.environ, blob.open(), outputs.CHUNK),
            mimetype=outputs.CONTENT_TYPES[output],
            direct_passthrough=True,
        )
        response.headers["Content-Length"] = str(blob.size)
        response.set_etag(f"{task_id}-{output}-{blob.size}")
        response.last_modified = int(spec.succeeded_at)
        response.make_conditional(request, accept_ranges=True, complete_length=blob.size)
        return response


def _check_request_line(limit: int | None, environ: WSGIEnvironment) -> None:
    """414 when `GET /path?query HTTP/1.1` is longer than a proxy in front of Ark would take."""
    if limit is None:
        return
    query = environ.get("QUERY_STRING", "")
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI") or (
        environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "") + (f"?{query}" if query else "")
    )
    line = f"{environ.get('REQUEST_METHOD', 'GET')} {target} {environ.get('SERVER_PROTOCOL', 'HTTP/1.1')}"
    if len(line) > limit:
        raise ArkHttpError(414, "RequestURITooLong", f"The request line is longer than {limit} bytes.")


def _api_endpoint(rule_endpoint: str, method: str) -> str | None:
    """Which Ark endpoint a request counts against (stats, faults), if any."""
    if rule_endpoint == "tasks":
        return "create" if method == "POST" else "list"
    if rule_endpoint == "task":
        return "delete" if method == "DELETE" else "get"
    if rule_endpoint == "output":
        return "output"
    return None


def _json_body(request: Request) -> Any:
    raw = request.get_data(cache=False)
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise bad_param("", "The request body is not valid JSON.") from None


def _list_query(request: Request) -> dict[str, Any]:
    args = request.args
    query: dict[str, Any] = {
        "page_num": _int_arg(args.get("page_num"), "page_num", 1, 1, None),
        "page_size": _int_arg(args.get("page_size"), "page_size", PAGE_SIZE_DEFAULT, 1, PAGE_SIZE_MAX),
    }
    status = args.get("filter.status") or None
    if status is not None and status not in STATUSES:
        raise bad_param("filter.status", f"`filter.status` must be one of: {', '.join(STATUSES)}.")
    tier = args.get("filter.service_tier") or None
    if tier is not None and tier not in SERVICE_TIERS:
        raise bad_param(
            "filter.service_tier", f"`filter.service_tier` must be one of: {', '.join(SERVICE_TIERS)}."
        )
    task_ids = [task_id for task_id in args.getlist("filter.task_ids") if task_id]
    query.update(status=status, service_tier=tier, model=args.get("filter.model") or None, task_ids=task_ids)
    return query


def _int_arg(raw: str | None, name: str, default: int, low: int, high: int | None) -> int:
    if raw is None or raw == "":
        return default
    value = int(raw) if DIGITS.match(raw) else None
    if value is None or value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise bad_param(name, f"`{name}` must be an integer {bounds}.")
    return value


def _limited(app_iter: Iterable[bytes], limit: int) -> Iterator[bytes]:
    sent = 0
    try:
        for chunk in app_iter:
            if sent >= limit:
                break
            chunk = chunk[: limit - sent]
            sent += len(chunk)
            if chunk:
                yield chunk
    finally:
        close = getattr(app_iter, "close", None)
        if close is not None:
            close()
