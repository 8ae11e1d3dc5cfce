from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from tasks_app.ark import (
    ArkAuthenticationError,
    ArkBadRequestError,
    ArkConnectionError,
    ArkError,
    ArkNotFoundError,
    ArkPermissionError,
    ArkProtocolError,
    ArkRateLimitedError,
    ArkServerError,
    ArkTimeoutError,
)
from tasks_app.ark.errors import error_from_response, parse_retry_after, redact


def _response(status: int, body: object = None, headers: dict[str, str] | None = None) -> tuple:
    content = json.dumps(body).encode() if body is not None else b""
    return httpx.Response(status, headers=headers or {}), content


def _envelope(code: str, message: str, param: str | None = None) -> dict:
    return {"error": {"code": code, "message": message, "param": param, "type": "BadRequest"}}


@pytest.mark.parametrize(
    ("status", "error_class", "retryable"),
    [
        (400, ArkBadRequestError, False),
        (401, ArkAuthenticationError, False),
        (403, ArkPermissionError, False),
        (404, ArkNotFoundError, False),
        (429, ArkRateLimitedError, True),
        (500, ArkServerError, True),
        (502, ArkServerError, True),
        (503, ArkServerError, True),
        (409, ArkError, False),
        (408, ArkError, True),
    ],
)
def test_it_maps_each_status_to_its_error_class(status, error_class, retryable):
    response, body = _response(status, _envelope("SomeCode", "Something went wrong"))

    error = error_from_response(response, body)

    assert type(error) is error_class
    assert error.http_status == status
    assert error.code == "SomeCode"
    assert error.message == "Something went wrong"
    assert error.retryable is retryable


def test_it_reads_code_param_type_and_the_request_id_from_the_message():
    response, body = _response(
        400,
        _envelope(
            "InvalidParameter",
            "The parameter `page_size` specified in the request is not valid. Request id: 0217abc-def",
            param="page_size",
        ),
    )

    error = error_from_response(response, body)

    assert isinstance(error, ArkBadRequestError)
    assert (error.code, error.param, error.type) == ("InvalidParameter", "page_size", "BadRequest")
    assert error.request_id == "0217abc-def"
    assert str(error).startswith("Ark HTTP 400 InvalidParameter: The parameter `page_size`")
    assert "(param: page_size)" in str(error)


def test_it_takes_the_request_id_from_the_header_when_the_message_has_none():
    response, body = _response(500, _envelope("InternalServiceError", "oops"), {"x-request-id": "req-42"})

    error = error_from_response(response, body)

    assert error.request_id == "req-42"
    assert str(error) == "Ark HTTP 500 InternalServiceError: oops [request id req-42]"


def test_it_makes_a_message_from_a_non_json_error_body():
    response = httpx.Response(502)

    error = error_from_response(response, b"<html>\n<h1>Bad gateway</h1>\n</html>")

    assert isinstance(error, ArkServerError)
    assert error.message == "<html> <h1>Bad gateway</h1> </html>"
    assert "\n" not in str(error)


def test_it_falls_back_to_the_reason_phrase_for_an_empty_body():
    error = error_from_response(httpx.Response(403), b"")

    assert isinstance(error, ArkPermissionError)
    assert error.message == "Forbidden"


def test_it_redacts_the_key_from_server_text():
    response, body = _response(401, _envelope("AuthenticationError", "the API key sk-secret-123 is invalid"))

    error = error_from_response(response, body, secret="sk-secret-123")

    assert "sk-secret-123" not in str(error)
    assert "sk-secret-123" not in repr(error)
    assert "sk-secret-123" not in error.message


KEY = "0f3c9d2e-7b1a-4c55-9e8f-aa12bc34de56"


@pytest.mark.parametrize(
    "echo",
    [KEY.upper(), KEY[:12], KEY[10:30], KEY[-8:].upper(), f"{KEY[:9]}…{KEY[20:29]}", KEY.swapcase()],
)
def test_it_redacts_any_run_of_eight_characters_of_the_key_in_any_case(echo):
    response, body = _response(401, _envelope("AuthenticationError", f"the API key {echo} is invalid"))

    error = error_from_response(response, body, secret=KEY)

    text = str(error).casefold()
    assert not any(KEY[i : i + 8].casefold() in text for i in range(len(KEY) - 7)), text
    assert "the api key *** is invalid" in text or "the api key ***…*** is invalid" in text


def test_it_leaves_short_coincidences_with_the_key_alone():
    assert redact("request 0f3c9d2 failed", KEY) == "request 0f3c9d2 failed"  # 7 characters


def test_it_masks_bearer_tokens_even_without_knowing_the_key():
    error = ArkError("header was Authorization: Bearer abc.def-ghi")

    assert "abc.def-ghi" not in str(error)
    assert redact("Bearer xyz and sk-1", "sk-1") == "Bearer *** and ***"
    assert redact("a kind kettle", "k") == "a kind kettle"  # too short to be a key


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        ("1.5", 1.5),
        (" 0 ", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("-3", None),
        ("inf", None),
    ],
)
def test_it_parses_retry_after_seconds(header, expected):
    assert parse_retry_after(header) == expected


def test_it_parses_retry_after_as_an_http_date():
    now = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
    header = format_datetime(now + timedelta(seconds=90), usegmt=True)

    assert parse_retry_after(header, now=now) == 90.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=5), usegmt=True), now=now) == 0.0


def test_it_parses_retry_after_in_seconds_and_as_a_date():
    # The output downloader reads the same header with the same function.
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=datetime.fromtimestamp(1445412480.0, UTC)) == 10.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_it_puts_retry_after_on_the_rate_limited_error():
    response, body = _response(
        429, _envelope("RateLimitExceeded.EndpointRPMExceeded", "slow down"), {"Retry-After": "3"}
    )

    error = error_from_response(response, body)

    assert isinstance(error, ArkRateLimitedError)
    assert error.retry_after == 3.0


def test_it_leaves_retry_after_unset_when_the_header_is_garbage():
    response, body = _response(429, _envelope("ServerOverloaded", "busy"), {"Retry-After": "later"})

    assert error_from_response(response, body).retry_after is None


def test_it_keeps_the_error_hierarchy_callers_rely_on():
    assert issubclass(ArkTimeoutError, ArkConnectionError)
    for error_class in (ArkBadRequestError, ArkRateLimitedError, ArkServerError, ArkProtocolError):
        assert issubclass(error_class, ArkError)
    assert ArkConnectionError("x").retryable is True
    assert ArkProtocolError("x", retryable=False).retryable is False
    assert ArkConnectionError("x", request_sent=False).request_sent is False


def test_it_keeps_messages_on_one_line_and_bounded():
    error = ArkError("line one\nline two\t" + "x" * 2000)

    assert "\n" not in str(error)
    assert len(error.message) <= 500
