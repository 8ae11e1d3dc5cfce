"""The senders: one request per message, signed as each receiver documents, with a timeout.

Webhook targets go through the download guard of tasks_app/lib/downloads.py (allowed hosts, public
addresses only, checked again on the address really connected to, no redirects): a target
on loopback or a private network is refused unless ARKDASH_ALERT_PRIVATE_HOSTS names it.

Every failure is a SendError saying whether retrying can help: 5xx, 429, timeouts and
broken connections can; any other answer, a refused address or a bad secret cannot.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import smtplib
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from django.conf import settings
from django.core.mail import EmailMessage, get_connection

from ..ark.errors import parse_retry_after
from ..lib.downloads import FetchError, FetchRefused, UrlPolicy, guarded_post, redact_url
from .models import AlertChannel, ChannelKind

ANSWER_MAX_CHARS = 1000
SIGNATURE_HEADER = "X-ArkDash-Signature"
TIMESTAMP_HEADER = "X-ArkDash-Timestamp"
NOTIFICATION_HEADER = "X-ArkDash-Notification"
# DingTalk answers HTTP 200 with errcode 130101 when a robot sends more than 20 messages a minute.
DINGTALK_TOO_FAST = 130101


@dataclass
class Message:
    """What one notification says: a subject, its text, and the events for the webhook's JSON."""

    notification_id: int
    subject: str
    text: str
    events: list[dict[str, Any]] = field(default_factory=list)
    is_test: bool = False


@dataclass
class Answer:
    status: int | None
    body: str


class SendError(Exception):
    def __init__(self, message: str, *, retryable: bool, status: int | None = None, body: str = "",
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status
        self.body = body
        self.retry_after = retry_after


def alert_policy() -> UrlPolicy:
    """The download guard's rules, for the hosts alert webhooks may be sent to."""
    return UrlPolicy(
        allowed_hosts=list(settings.ARKDASH_ALERT_ALLOWED_HOSTS),
        private_hosts=list(settings.ARKDASH_ALERT_PRIVATE_HOSTS),
    )


def url_problem(url: str) -> str:
    """Why a webhook URL cannot be used, or "" (the forms ask before storing one)."""
    try:
        alert_policy().check(url)
    except FetchRefused as refused:
        return _refusal(refused)
    except FetchError:
        return ""  # DNS may fail today and work tomorrow: checked again when sending
    return ""


def _refusal(refused: FetchRefused) -> str:
    # The guard names the archive's setting; for alerts the opt-in is ours.
    return refused.message.replace("ARKDASH_ARCHIVE_PRIVATE_HOSTS", "ARKDASH_ALERT_PRIVATE_HOSTS").replace(
        "ARKDASH_ARCHIVE_ALLOWED_HOSTS", "ARKDASH_ALERT_ALLOWED_HOSTS"
    )


def url_hint(url: str) -> str:
    """What the pages show of a webhook URL: its host only (the path and query hold tokens)."""
    redacted = redact_url(url)
    return redacted.split("/")[2] if redacted.count("/") >= 2 else redacted


# --- signatures, as each receiver documents them ---------------------------------------------


def webhook_signature(*, secret: str, timestamp: str, body: bytes) -> str:
    """sha256=hex(HMAC-SHA256(secret, timestamp + "." + body)), docs/alerts.md."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def feishu_sign(*, secret: str, timestamp: int) -> str:
    """Feishu/Lark custom bot: base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}", msg=empty))."""
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def dingtalk_sign(*, secret: str, timestamp_ms: int) -> str:
    """DingTalk robot: base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}")), sent URL-encoded."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


# --- sending ------------------------------------------------------------------------------------


def send(channel: AlertChannel, message: Message) -> Answer:
    """Send message to channel; the receiver's answer, or SendError."""
    kind = channel.kind
    if kind == ChannelKind.EMAIL:
        return _send_email(channel, message)
    url = channel.target
    secret = channel.secret
    if kind == ChannelKind.WEBHOOK:
        body = json.dumps(
            {"notification": message.notification_id, "test": message.is_test, "subject": message.subject,
             "text": message.text, "events": message.events},
            ensure_ascii=False, separators=(",", ":"),
        ).encode()
        timestamp = str(int(time.time()))
        headers = {TIMESTAMP_HEADER: timestamp, NOTIFICATION_HEADER: str(message.notification_id)}
        if secret:
            headers[SIGNATURE_HEADER] = webhook_signature(secret=secret, timestamp=timestamp, body=body)
        return _post(url, body=body, headers=headers)
    if kind == ChannelKind.FEISHU:
        payload: dict[str, Any] = {"msg_type": "text", "content": {"text": message.text}}
        if secret:
            timestamp = int(time.time())
            payload = {"timestamp": str(timestamp), "sign": feishu_sign(secret=secret, timestamp=timestamp), **payload}
        answer = _post(url, body=_json(payload))
        _raise_for_code(answer, "code", retryable_codes=())
        return answer
    if kind == ChannelKind.DINGTALK:
        params = {}
        if secret:
            timestamp_ms = int(time.time() * 1000)
            params = {"timestamp": str(timestamp_ms), "sign": dingtalk_sign(secret=secret, timestamp_ms=timestamp_ms)}
        answer = _post(url, body=_json({"msgtype": "text", "text": {"content": message.text}}), params=params)
        _raise_for_code(answer, "errcode", retryable_codes=(DINGTALK_TOO_FAST,))
        return answer
    if kind == ChannelKind.SLACK:
        return _post(url, body=_json({"text": message.text}))
    raise SendError(f"unknown channel kind {kind!r}", retryable=False)


def _json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()


def _timeout() -> float:
    return float(settings.ARKDASH_ALERT_TIMEOUT_SECONDS)


def _post(url: str, *, body: bytes, headers: dict[str, str] | None = None,
          params: dict[str, str] | None = None) -> Answer:
    where = url_hint(url)
    try:
        posting = guarded_post(
            url, policy=alert_policy(), timeout=_timeout(), content=body, params=params,
            headers={"User-Agent": "ArkDash-alerts/1", "Content-Type": "application/json", **(headers or {})},
        )
    except FetchRefused as refused:
        raise SendError(f"refused {where}: {_refusal(refused)}", retryable=False) from None
    except FetchError as failed:
        raise SendError(f"{where}: {failed.message}", retryable=True) from None
    try:
        with posting as response:
            text = _read_answer(response)
    except FetchRefused as refused:
        raise SendError(f"refused {where}: {_refusal(refused)}", retryable=False) from None
    except httpx.TimeoutException as error:
        raise SendError(f"{where}: timed out ({type(error).__name__})", retryable=True) from None
    except (httpx.HTTPError, FetchError) as error:
        raise SendError(f"{where}: {type(error).__name__}", retryable=True) from None
    answer = Answer(status=response.status_code, body=text)
    status = response.status_code
    if status >= 500 or status == 429:
        raise SendError(f"{where} answered {status}", retryable=True, status=status, body=answer.body,
                        retry_after=parse_retry_after(response.headers.get("retry-after")))
    if status >= 300:
        raise SendError(f"{where} answered {status}", retryable=False, status=status, body=answer.body)
    return answer


def _read_answer(response: httpx.Response) -> str:
    """The start of the receiver's answer: enough for the history, never a whole page."""
    received = b""
    for chunk in response.iter_bytes():
        received += chunk
        if len(received) >= 4 * ANSWER_MAX_CHARS:
            break
    return received.decode(response.encoding or "utf-8", errors="replace")[:ANSWER_MAX_CHARS]


def _raise_for_code(answer: Answer, field_name: str, *, retryable_codes: tuple[int, ...]) -> None:
    """Feishu and DingTalk answer HTTP 200 with an error code in the body (bad signature, ...)."""
    try:
        code = json.loads(answer.body).get(field_name, 0)
    except (ValueError, AttributeError):
        return
    if code not in (0, None):
        raise SendError(f"the receiver answered {field_name} {code}", retryable=code in retryable_codes,
                        status=answer.status, body=answer.body)


def email_addresses(target: str) -> list[str]:
    return [address for address in target.replace(";", ",").replace("\n", ",").split(",") if address.strip()]


def _send_email(channel: AlertChannel, message: Message) -> Answer:
    recipients = [address.strip() for address in email_addresses(channel.target)]
    connection = get_connection(timeout=_timeout())
    email = EmailMessage(subject=message.subject, body=message.text, to=recipients, connection=connection,
                         headers={NOTIFICATION_HEADER: str(message.notification_id)})
    try:
        sent = email.send()
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as error:
        raise SendError(f"the mail server refused the message ({type(error).__name__})", retryable=False) from None
    except (smtplib.SMTPException, OSError) as error:
        raise SendError(f"the mail server could not be reached ({type(error).__name__})", retryable=True) from None
    return Answer(status=None, body=f"sent to {sent and len(recipients)} recipient(s)")
