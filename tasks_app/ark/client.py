"""ArkClient: the only code in ArkDash that talks to the Ark content-generation API.

A plain library (no Django): callers pass the base URL, key, transport and rate limiter.
Every attempt goes through the rate limiter, has a timeout, and is retried only when
that is safe (see retry.py). The API key is sent in one header and nowhere else: it
never appears in a log line, an exception or a repr.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from importlib import metadata
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx
import tenacity

from . import observe
from .errors import (
    ArkBadRequestError,
    ArkConnectionError,
    ArkDeleteRefusedError,
    ArkError,
    ArkNotFoundError,
    ArkProtocolError,
    ArkServerError,
    ArkTimeoutError,
    ArkTooManyIdsError,
    error_from_response,
    redact,
)
from .retry import Backoff, RetryPolicy, retry_any_retryable, retry_if_surely_not_processed
from .types import ArkTask, RateLimiter, TaskPage

logger = logging.getLogger(__name__)

TASKS_PATH = "contents/generations/tasks"
STATUSES = frozenset({"queued", "running", "succeeded", "failed", "expired", "cancelled"})
MAX_PAGE_SIZE = 500
# Ids look like cgt-20250331175019-68d9t; allow a little more, but nothing that could
# change the URL's meaning (slashes, dots only between other characters, spaces).
TASK_ID = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,126}[A-Za-z0-9_-])?\Z")
# Ark's output URLs stop working this long after the task succeeded.
OUTPUT_URL_LIFETIME = timedelta(hours=24)
_CONNECT_TIMEOUT_CAP = 5.0
# A page of 500 tasks is well under 1 MiB; anything far larger is not an Ark answer.
_MAX_BODY_BYTES = 16 * 1024 * 1024
# How long to tell the shared limiter to back off after a 429 that gave no Retry-After.
_DEFAULT_PENALTY_SECONDS = 1.0
# iter_pages stops after the pages the first total promised plus this slack (new tasks
# shift items while we page), so a server reporting an ever-growing total cannot loop us.
_EXTRA_PAGES = 2
_MAX_PAGES = 1000
# How a refused DELETE may come back: the documents name no status (see CONTRACT.md).
_REFUSAL_STATUSES = frozenset({400, 403, 409})


def _user_agent() -> str:
    try:
        version = metadata.version("arkdash")
    except metadata.PackageNotFoundError:
        version = "dev"
    return f"arkdash/{version}"


class ArkClient:
    """A synchronous client for Ark's /contents/generations/tasks endpoints.

    One httpx.Client (one connection pool) per ArkClient; close it, or use `with`.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        max_retries: int = 3,
        transport: httpx.BaseTransport | None = None,
        rate_limiter: RateLimiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        url = _validated_base_url(base_url)
        if not isinstance(api_key, str) or not api_key.strip():
            raise ValueError("api_key is required")
        if api_key != api_key.strip() or any(ch.isspace() or not ch.isprintable() for ch in api_key):
            raise ValueError("api_key contains whitespace or control characters")
        _require_positive("timeout", timeout)
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError("max_retries must be an integer >= 0")
        _require_positive("backoff_base", backoff_base, allow_zero=True)
        _require_positive("backoff_max", backoff_max, allow_zero=True)

        self.base_url = str(url)
        self._api_key = api_key
        self._timeout = float(timeout)
        self._max_retries = max_retries
        self._rate_limiter = rate_limiter
        self._sleep = sleep
        self._backoff = Backoff(base=backoff_base, cap=backoff_max)
        self._http = httpx.Client(
            base_url=url,
            transport=transport,
            timeout=httpx.Timeout(self._timeout, connect=min(self._timeout, _CONNECT_TIMEOUT_CAP)),
            follow_redirects=False,  # a redirect would carry the key to another host
            headers={
                "Authorization": f"Bearer {api_key}",
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": _user_agent(),
            },
        )

    def __repr__(self) -> str:
        return f"ArkClient(base_url={self.base_url!r})"

    def __enter__(self) -> ArkClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- endpoints ------------------------------------------------------------------

    def list_tasks(
        self,
        *,
        page_num: int = 1,
        page_size: int = 100,
        status: str | None = None,
        task_ids: Iterable[str] | None = None,
        model: str | None = None,
        service_tier: str | None = None,
    ) -> TaskPage:
        """One page of tasks from the 7-day window. `model` is the endpoint id tasks were sent to.

        An empty `task_ids` means "none of them" and returns an empty page without a call
        (Ark would read a missing filter as "all tasks"). ArkTooManyIdsError means the call
        was refused for its size (too many ids or too long a URL): send fewer ids per call.
        """
        params = _list_params(
            page_num=page_num,
            page_size=page_size,
            status=status,
            task_ids=task_ids,
            model=model,
            service_tier=service_tier,
        )
        if params is None:
            return TaskPage(total=0, items=[])
        try:
            data = self._call("GET", TASKS_PATH, endpoint="list", params=params, policy=retry_any_retryable)
        except ArkError as error:
            sent = sum(1 for name, _value in params if name == "filter.task_ids")
            if sent and _refused_for_size(error):
                raise ArkTooManyIdsError(
                    f"Ark refused {sent} task ids in one call: {error.message}",
                    http_status=error.http_status,
                    code=error.code,
                    param=error.param,
                    request_id=error.request_id,
                ) from error
            raise
        return TaskPage.from_json(data)

    def iter_tasks(
        self,
        *,
        page_size: int = MAX_PAGE_SIZE,
        status: str | None = None,
        task_ids: Iterable[str] | None = None,
        model: str | None = None,
        service_tier: str | None = None,
    ) -> Iterator[ArkTask]:
        """Every matching task, page after page, each id once.

        Stops on a short or empty page, once `total` is reached, or after the number of
        pages the first answer promised (plus slack for tasks arriving meanwhile).
        """
        pages = self.iter_pages(
            page_size=page_size, status=status, task_ids=task_ids, model=model, service_tier=service_tier
        )
        return _each_task_once(pages)

    def iter_pages(
        self,
        *,
        page_size: int = MAX_PAGE_SIZE,
        status: str | None = None,
        task_ids: Iterable[str] | None = None,
        model: str | None = None,
        service_tier: str | None = None,
        newest_first_either_way: bool = False,
        max_calls: int | None = None,
        each_call: Callable[[Callable[[], TaskPage]], TaskPage] | None = None,
    ) -> Iterator[TaskPage]:
        """Pages of matching tasks until as many distinct tasks were seen as Ark's total says.

        Stops on an empty page, once that many distinct ids were seen, or when the calls run
        out. Pages go 1, 2, 3, ..., stopping at a short page, within the pages the first
        answer promised plus slack (tasks arriving meanwhile shift items, and a server
        reporting an ever-growing total cannot loop us).

        Ark promises no order, so with `newest_first_either_way` pages are not trusted to
        partition the set: they go 1, last, 2, 3, ... (whether Ark lists newest or oldest
        first, the newest tasks come at once) and start again at 1, for about ln(total) + 2
        passes (a shuffled order needs that many to show every task) or `max_calls` calls.

        `each_call` wraps every list call (the sync's patience with 429s, its lease).
        """
        ids = None if task_ids is None else _task_id_list(task_ids)
        # Validate now, not at the first next(): bad arguments fail where they are passed.
        _list_params(
            page_num=1,
            page_size=page_size,
            status=status,
            task_ids=ids,
            model=model,
            service_tier=service_tier,
        )
        return self._pages(
            page_size=page_size,
            status=status,
            task_ids=ids,
            model=model,
            service_tier=service_tier,
            newest_first_either_way=newest_first_either_way,
            max_calls=max_calls,
            each_call=each_call or (lambda call: call()),
        )

    def _pages(
        self,
        *,
        page_size: int,
        status: str | None,
        task_ids: list[str] | None,
        model: str | None,
        service_tier: str | None,
        newest_first_either_way: bool,
        max_calls: int | None,
        each_call: Callable[[Callable[[], TaskPage]], TaskPage],
    ) -> Iterator[TaskPage]:
        seen: set[str] = set()
        order: list[int] = [1]
        calls, budget = 0, max_calls
        while True:
            page_num = order[calls % len(order)] if newest_first_either_way else calls + 1
            page = each_call(
                lambda page_num=page_num: self.list_tasks(
                    page_num=page_num,
                    page_size=page_size,
                    status=status,
                    task_ids=task_ids,
                    model=model,
                    service_tier=service_tier,
                )
            )
            calls += 1
            seen.update(task.id for task in page.items)
            yield page
            if not page.items or len(seen) >= page.total:
                return
            pages = max(1, math.ceil(page.total / page_size))
            if newest_first_either_way:
                if len(order) != pages:
                    order = [1, *([pages] if pages > 1 else []), *range(2, pages)]
                if budget is None:
                    passes = math.ceil(math.log(max(page.total, 1))) + 2
                    budget = min(pages * passes, _MAX_PAGES)
            else:
                if len(page.items) < page_size or calls * page_size >= page.total:
                    return
                if budget is None:
                    budget = min(_MAX_PAGES, pages + _EXTRA_PAGES)
            if calls >= budget:
                if not newest_first_either_way:
                    logger.warning("ark list: stopped after %d pages; the total went on growing", calls)
                return

    def get_task(self, task_id: str) -> ArkTask:
        """One task by id; ArkNotFoundError when Ark has no such record (any more)."""
        data = self._call("GET", _task_path(task_id), endpoint="get", policy=retry_any_retryable)
        return ArkTask.from_json(data)

    def create_task(self, *, model: str, content: list[dict[str, Any]], **options: Any) -> str:
        """Submit a generation task and return its id. Options set to None are not sent.

        POST is not idempotent, so it is retried only when Ark surely did not receive it
        (the connection never opened, or a 429). After a timeout, a dropped connection or
        a 5xx the task may exist: the error is raised and the caller decides (listing
        recent tasks shows whether it was created).
        """
        if not isinstance(model, str) or not model.strip():
            raise ValueError("model is required (the model or endpoint id)")
        if not isinstance(content, list) or not content or not all(isinstance(c, dict) for c in content):
            raise ValueError("content must be a non-empty list of objects")
        body = {"model": model, "content": content}
        body.update({key: value for key, value in options.items() if value is not None})
        try:
            data = self._call(
                "POST", TASKS_PATH, endpoint="create", body=body, policy=retry_if_surely_not_processed
            )
        except ArkProtocolError as error:
            raise ArkProtocolError(
                f"unreadable answer to create; the task may exist: {error.message}", retryable=False
            ) from error
        task_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise ArkProtocolError("create answered without a task id; the task may exist", retryable=False)
        return task_id

    def delete_task(self, task_id: str) -> ArkTask | None:
        """Cancel a queued task, or delete the record of a succeeded/failed/expired one.

        Returns what Ark holds afterwards:
        - the re-read ArkTask when the record still exists (a cancelled task);
        - None when the record is gone (a finished task deleted, or no such task).
        Raises:
        - ArkDeleteRefusedError when Ark refuses and a re-read shows why (the task is running
          or already cancelled), whatever the refusal's status (400, 403 or 409);
        - the original error when the outcome stays unknown (see below), or any other ArkError.

        DELETE is never repeated blindly. When its outcome is unknown (timeout, dropped
        connection, 5xx, unreadable answer) the task is re-read instead: cancelled -> it
        worked; not found -> the record is gone; running -> refused; still queued or
        finished -> the DELETE did not happen, so it is sent once more. A failure of the
        re-read after a clean DELETE is raised even though the DELETE took effect.
        """
        path = _task_path(task_id)
        for attempt in (1, 2):
            try:
                self._call("DELETE", path, endpoint="delete", policy=retry_if_surely_not_processed)
            except ArkNotFoundError:
                return None
            except (ArkConnectionError, ArkServerError, ArkProtocolError) as unknown:
                logger.warning("ark DELETE %s: outcome unknown (%s); re-reading the task", path, unknown)
                try:
                    task = self.get_task(task_id)
                except ArkNotFoundError:
                    return None
                except ArkError:
                    raise unknown  # noqa: B904 - the DELETE's error is the one to report
                if task.status == "cancelled":
                    return task
                if task.status == "running":
                    raise _refused(task, unknown) from unknown
                if attempt == 1 and task.status in {"queued", "succeeded", "failed", "expired"}:
                    continue  # the record is unchanged: the DELETE never took effect
                raise
            except ArkError as refusal:
                if refusal.http_status not in _REFUSAL_STATUSES:
                    raise
                return self._explain_refusal(task_id, refusal)
            try:
                return self.get_task(task_id)
            except ArkNotFoundError:
                return None
        raise AssertionError("unreachable")  # pragma: no cover - the loop always returns or raises

    def _explain_refusal(self, task_id: str, refusal: ArkError) -> ArkTask | None:
        """A 4xx to DELETE: its status says little (400, 403 and 409 all occur), so re-read.

        Running or cancelled: the state table's refusal, raised as ArkDeleteRefusedError
        whatever the status was. Gone: the record is deleted (None). Anything else: the
        refusal is about something else (a bad key, an overdue account) and is raised as is.
        """
        try:
            task = self.get_task(task_id)
        except ArkNotFoundError:
            return None
        except ArkError:
            raise refusal from None
        if task.status in ("running", "cancelled"):
            raise _refused(task, refusal) from refusal
        raise refusal

    # --- transport ------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        policy: RetryPolicy,
        params: list[tuple[str, str | int]] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        """One logical call: attempts with backoff while `policy` says a failure may be retried."""

        def should_retry(error: BaseException) -> bool:
            return isinstance(error, ArkError) and policy(error) and self._backoff.allows(error)

        def log_retry(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            logger.warning(
                "ark %s %s failed (%s); attempt %d, retrying in %.2fs",
                method,
                path,
                error,
                state.attempt_number,
                wait,
            )

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self._max_retries + 1),
            wait=self._backoff,
            retry=tenacity.retry_if_exception(should_retry),
            sleep=self._sleep,
            before_sleep=log_retry,
            reraise=True,
        )
        return retrying(self._attempt, method, path, endpoint=endpoint, params=params, body=body)

    def _attempt(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        params: list[tuple[str, str | int]] | None,
        body: dict[str, Any] | None,
    ) -> Any:
        """One attempt, reported to the call observers (see observe.py) whatever its outcome."""
        asked_at = time.monotonic()
        if self._rate_limiter is not None:
            try:
                self._rate_limiter.acquire(endpoint=endpoint)
            except Exception:
                _observe(endpoint, method, observe.LIMITER_REFUSED, asked_at=asked_at, sent_at=None)
                raise
        sent_at = time.monotonic()
        try:
            result = self._send(method, path, endpoint=endpoint, params=params, body=body)
        except ArkError as error:
            _observe(endpoint, method, observe.outcome_of(error), asked_at=asked_at, sent_at=sent_at)
            raise
        _observe(endpoint, method, observe.OK, asked_at=asked_at, sent_at=sent_at)
        return result

    def _send(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        params: list[tuple[str, str | int]] | None,
        body: dict[str, Any] | None,
    ) -> Any:
        client_request_id = uuid.uuid4().hex
        request = self._http.build_request(
            method,
            path,
            params=params,
            json=body,
            headers={"X-Client-Request-Id": client_request_id},
        )
        started = time.monotonic()
        try:
            response = self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise self._network_error(exc, before_response=True) from exc
        try:
            if response.is_success:
                content = self._read_body(response, deadline=started + self._timeout)
            else:
                content = self._read_error_body(response, deadline=started + self._timeout)
        finally:
            response.close()

        elapsed = time.monotonic() - started
        request_id = response.headers.get("x-request-id", "-")
        logger.debug(
            "ark %s %s -> %d in %.3fs (request id %s, client request id %s)",
            method,
            path,
            response.status_code,
            elapsed,
            request_id,
            client_request_id,
        )
        if response.is_success:
            return self._decode(content)
        error = error_from_response(response, content, secret=self._api_key)
        if response.status_code == 429 and self._rate_limiter is not None:
            penalty = getattr(error, "retry_after", None)
            self._rate_limiter.penalize(
                endpoint=endpoint, retry_after=penalty if penalty is not None else _DEFAULT_PENALTY_SECONDS
            )
        raise error

    def _read_body(self, response: httpx.Response, *, deadline: float) -> bytes:
        """The whole body, within the total deadline and size cap, checked against Content-Length."""
        chunks = []
        size = 0
        try:
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > _MAX_BODY_BYTES:
                    raise ArkProtocolError(f"answer larger than {_MAX_BODY_BYTES} bytes", retryable=False)
                if time.monotonic() > deadline:
                    raise ArkTimeoutError(f"answer not complete within {self._timeout:g}s")
                chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise self._network_error(exc, before_response=False) from exc
        # A real connection enforces Content-Length itself; an in-process transport (the
        # simulator) does not, so compare here. Encoded bodies are checked by their decoder.
        declared = response.headers.get("content-length", "").strip()
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if declared.isdigit() and encoding in ("", "identity") and size != int(declared):
            raise ArkProtocolError(f"truncated answer: {size} of {int(declared)} bytes")
        return b"".join(chunks)

    def _read_error_body(self, response: httpx.Response, *, deadline: float) -> bytes:
        """An error body is only detail: if it cannot be read whole, the status still tells."""
        try:
            return self._read_body(response, deadline=deadline)
        except ArkError:
            return b""

    def _decode(self, content: bytes) -> Any:
        if not content.strip():
            return None  # DELETE may answer with an empty body
        try:
            return json.loads(content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ArkProtocolError(f"answer is not JSON: {exc}") from None

    def _network_error(self, exc: httpx.HTTPError, *, before_response: bool) -> ArkError:
        detail = redact(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, self._api_key)
        # The request surely never reached Ark only if no connection was made.
        never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
        if isinstance(exc, httpx.TimeoutException):
            return ArkTimeoutError(f"timed out: {detail}", request_sent=not never_sent)
        if isinstance(exc, httpx.UnsupportedProtocol):
            return ArkConnectionError(f"bad Ark URL: {detail}", request_sent=False, retryable=False)
        if isinstance(exc, httpx.DecodingError) or (
            isinstance(exc, httpx.RemoteProtocolError) and not before_response
        ):
            return ArkProtocolError(f"answer cut off: {detail}")
        return ArkConnectionError(f"connection failed: {detail}", request_sent=not never_sent)


def _each_task_once(pages: Iterator[TaskPage]) -> Iterator[ArkTask]:
    seen: set[str] = set()
    for page in pages:
        for task in page.items:
            # Newest-first paging shifts items when tasks arrive, so a page can repeat some.
            if task.id not in seen:
                seen.add(task.id)
                yield task


def _refused_for_size(error: ArkError) -> bool:
    """Did Ark (or a proxy before it) refuse a list call because of its size?"""
    if error.http_status in (413, 414):
        return True
    if not isinstance(error, ArkBadRequestError):
        return False
    if error.param:
        return "task_ids" in error.param
    return (error.code or "").startswith("InvalidParameter")


def _refused(task: ArkTask, cause: ArkError) -> ArkDeleteRefusedError:
    return ArkDeleteRefusedError(
        f"task {task.id} is {task.status}: Ark refuses to cancel or delete it",
        status=task.status,
        task=task,
        http_status=cause.http_status,
        code=cause.code,
        request_id=cause.request_id,
        retryable=False,
    )


def _observe(endpoint: str, method: str, outcome: str, *, asked_at: float, sent_at: float | None) -> None:
    now = time.monotonic()
    sent = now if sent_at is None else sent_at
    observe.notify(
        observe.CallEvent(
            endpoint=endpoint,
            method=method,
            outcome=outcome,
            seconds=now - sent,
            rate_wait_seconds=sent - asked_at,
        )
    )


# --- input validation -------------------------------------------------------------------


def _validated_base_url(base_url: str) -> httpx.URL:
    if not isinstance(base_url, str) or not base_url.strip():
        raise ValueError("base_url is required, e.g. https://ark.cn-beijing.volces.com/api/v3")
    try:
        url = httpx.URL(base_url.strip())
    except (httpx.InvalidURL, TypeError) as exc:
        raise ValueError(f"base_url is not a valid URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("base_url must be an http(s) URL with a host")
    if url.userinfo or url.query or url.fragment:
        raise ValueError("base_url must not contain credentials, a query or a fragment")
    return url


def _require_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} number")


def _check_task_id(task_id: object) -> str:
    if not isinstance(task_id, str) or not TASK_ID.match(task_id):
        shown = repr(task_id)[:80]
        raise ValueError(f"invalid task id {shown}: expected letters, digits, '-', '_' or '.'")
    return task_id


def _task_path(task_id: str) -> str:
    return f"{TASKS_PATH}/{quote(_check_task_id(task_id), safe='')}"


def _task_id_list(task_ids: Iterable[str]) -> list[str]:
    if isinstance(task_ids, str | bytes):
        raise ValueError("task_ids must be a list of ids, not one string")
    return [_check_task_id(task_id) for task_id in task_ids]


def _optional_text(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string or None")
    return value.strip()


def _list_params(
    *,
    page_num: int,
    page_size: int,
    status: str | None,
    task_ids: Iterable[str] | None,
    model: str | None,
    service_tier: str | None,
) -> list[tuple[str, str | int]] | None:
    """Query parameters for the list call; None when the filter can match nothing."""
    if isinstance(page_num, bool) or not isinstance(page_num, int) or page_num < 1:
        raise ValueError("page_num must be an integer >= 1")
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be an integer from 1 to {MAX_PAGE_SIZE}")
    if status is not None and status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(sorted(STATUSES))}")
    params: list[tuple[str, str | int]] = [("page_num", page_num), ("page_size", page_size)]
    if status is not None:
        params.append(("filter.status", status))
    if task_ids is not None:
        ids = _task_id_list(task_ids)
        if not ids:
            return None
        # Ark reads a list filter as the same key repeated, one id each.
        params.extend(("filter.task_ids", task_id) for task_id in dict.fromkeys(ids))
    model = _optional_text("model", model)
    if model is not None:
        params.append(("filter.model", model))
    service_tier = _optional_text("service_tier", service_tier)
    if service_tier is not None:
        params.append(("filter.service_tier", service_tier))
    return params
