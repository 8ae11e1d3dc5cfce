"""Ark's error envelope: {"error": {"code", "message", "param", "type"}} with the request id."""

from __future__ import annotations

ERROR_TYPES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    414: "URITooLong",
    416: "RequestedRangeNotSatisfiable",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}

# Codes the simulator uses, in one place so tests and docs agree.
NOT_FOUND_TASK = "NotFound.Task"
TASK_STATUS = "InvalidParameter.TaskStatus"
RATE_LIMITED = "RateLimitExceeded.EndpointRPMExceeded"


class ArkHttpError(Exception):
    """Raised anywhere in a request handler; the app turns it into the envelope."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        param: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.headers = headers or {}

    def body(self, request_id: str) -> dict:
        return {
            "error": {
                "code": self.code,
                "message": f"{self.message} Request id: {request_id}",
                "param": self.param,
                "type": ERROR_TYPES.get(self.status, "Error"),
            }
        }


def bad_param(param: str, message: str, code: str = "InvalidParameter") -> ArkHttpError:
    return ArkHttpError(400, code, message, param=param)


def missing_param(param: str) -> ArkHttpError:
    return ArkHttpError(
        400,
        "MissingParameter",
        f"The request failed because it is missing the required parameter `{param}`.",
        param=param,
    )


def endpoint_not_found(endpoint: str, param: str) -> ArkHttpError:
    return ArkHttpError(
        404,
        "InvalidEndpointOrModel.NotFound",
        f"The model or endpoint `{endpoint}` does not exist or you do not have access to it.",
        param=param,
    )


def task_not_found(task_id: str) -> ArkHttpError:
    return ArkHttpError(
        404,
        NOT_FOUND_TASK,
        f"The specified task `{task_id}` is not found (unknown, deleted, or older than 7 days).",
        param="id",
    )
