"""Ark's error envelope, as the gateway answers it: {"error": {code, message, param, type}}."""

from __future__ import annotations

import math
import uuid

from django.http import HttpRequest, JsonResponse

from ..ark.errors import ArkError

ERROR_TYPES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    413: "RequestEntityTooLarge",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


class GatewayError(Exception):
    """Raised anywhere in a gateway view; the view turns it into Ark's envelope."""

    def __init__(
        self, status: int, code: str, message: str, *, param: str = "", retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.retry_after = retry_after


def bad_param(param: str, message: str, code: str = "InvalidParameter") -> GatewayError:
    return GatewayError(400, code, message, param=param)


def not_found(task_id: str) -> GatewayError:
    return GatewayError(404, "NotFound.Task", f"The task {task_id} was not found.", param="id")


def request_id_of(request: HttpRequest) -> str:
    """The request id the answer carries; the SDK's own X-Client-Request-Id when it sent one."""
    sent = request.headers.get("X-Client-Request-Id", "")
    if sent and len(sent) <= 64 and sent.replace("-", "").replace("_", "").isalnum():
        return sent
    return uuid.uuid4().hex


def error_response(request: HttpRequest, error: GatewayError) -> JsonResponse:
    rid = request_id_of(request)
    body = {
        "error": {
            "code": error.code,
            "message": f"{error.message} Request id: {rid}",
            "param": error.param,
            "type": ERROR_TYPES.get(error.status, "Error"),
        }
    }
    response = JsonResponse(body, status=error.status)
    response["x-request-id"] = rid
    if error.retry_after is not None:
        response["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    # Django would log every 4xx with its path; the gateway's refusals are the caller's business.
    response._has_been_logged = error.status < 500
    return response


def from_ark_error(error: ArkError) -> GatewayError:
    """Ark's own refusal, passed on as Ark said it (its 429 keeps its Retry-After)."""
    status = error.http_status
    if status is None or status >= 500 or status in (401, 403):
        # A network failure, Ark's 5xx, or Ark refusing the account's key (that is
        # ArkDash's problem, not the caller's): a 502 with nothing of the key in it.
        return GatewayError(502, "UpstreamError", "Ark could not be reached or failed; try again.")
    retry_after = getattr(error, "retry_after", None)
    if status == 429 and retry_after is None:
        retry_after = 1.0
    message = error.message.split(" Request id:")[0]
    return GatewayError(status, error.code or "UpstreamError", message, param=error.param or "",
                        retry_after=retry_after)
