"""The simulator's state and behaviour: tasks per API key, the clock, outputs, limits, faults."""

from __future__ import annotations

import random
import secrets
import threading
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import httpx

from . import errors, outputs
from .callbacks import CallbackDispatcher, CallbackEvent
from .catalog import DEFAULT_ENDPOINTS, DEFAULT_VIDEO_MODEL, MODELS, SEED3D_MODEL, resolve_model
from .clock import SimClock
from .errors import ArkHttpError
from .faults import ConnectionDropped, Faults
from .ids import task_id_for
from .media import RATIO_FILES, video_min_size
from .outputs import OutputSpec
from .ratelimit import RateLimiter
from .tasks import (
    CANCELLED_TTL,
    DAY,
    FAILURE_MESSAGES,
    STATUSES,
    THREE_D_FAILURE,
    VIDEO_FAILURE,
    SimTask,
    task_object,
    three_d_fields,
    usage_tokens,
    video_fields,
)
from .validation import EXPIRES_DEFAULT, CreateRequest, check_options, parse_create

if TYPE_CHECKING:
    from .server import ServerHandle

API_ENDPOINTS = ("create", "get", "list", "delete", "output")
CALLBACK_STATUSES = ("queued", "running", "succeeded", "failed", "expired")
ACTIVE_STATUSES = ("queued", "running", "cancelled")  # statuses that still change by themselves
# Options add_task accepts as **params: the create-body options that shape a task object.
# Records this much older than now are forgotten (invisible anyway after 7 days).
PURGE_AFTER, PURGE_EVERY = 30 * DAY, 3600.0
# The documents leave these answers open; the simulator can give each plausible one.
LIST_ORDERS = ("newest", "oldest", "shuffled")
REFUSED_DELETE_STATUSES = (400, 403, 409)
REFUSED_DELETE_CODES = {400: errors.TASK_STATUS, 403: "OperationDenied.TaskStatus", 409: "Conflict.TaskStatus"}
# A refused DELETE holds this long for the same task: the official SDK retries a 409
# (with a fresh request id) within seconds, and that retry must not find the task
# finished meanwhile and delete a record nobody asked to delete.
REFUSAL_HOLD_SECONDS = 10.0
TASK_OPTIONS = {
    "resolution", "ratio", "duration", "frames", "seed", "service_tier", "execution_expires_after",
    "generate_audio", "draft", "priority", "tools", "safety_identifier", "camera_fixed", "watermark",
    "subdivisionlevel",
}  # fmt: skip


class Simulator:
    """An in-memory Ark content-generation API. See arksim/README.md for the tour."""

    def __init__(
        self,
        api_keys: Iterable[str] = ("sim-key",),
        public_base_url: str = "http://arksim.test",
        queue_seconds: float = 5.0,
        run_seconds: float = 20.0,
        list_rate_per_second: float | None = 1.0,
        get_rate_per_second: float | None = 20.0,
        delete_rate_per_second: float | None = 20.0,
        rng_seed: int | None = 0,
        clock: SimClock | None = None,
        callback_transport: httpx.BaseTransport | None = None,
        output_bytes: int | None = None,
        *,
        quoted_timestamps: bool = False,
        endpoints: dict[str, str] | None = None,
        max_queued_per_key: int | None = 120,
        list_order: str = "newest",
        max_task_ids: int | None = None,
        max_request_line: int | None = None,
        refused_delete_status: int = 400,
        key_groups: Iterable[Iterable[str]] = (),
        exact_window: bool = False,
    ) -> None:
        self.api_keys = tuple(api_keys)
        if not self.api_keys or not all(isinstance(key, str) and key for key in self.api_keys):
            raise ValueError("api_keys must hold at least one non-empty key")
        if queue_seconds < 0 or run_seconds < 0:
            raise ValueError("queue_seconds and run_seconds must be >= 0")
        self.public_base_url = public_base_url.rstrip("/")
        self.queue_seconds = float(queue_seconds)
        self.run_seconds = float(run_seconds)
        self.output_bytes = output_bytes
        if output_bytes is not None:
            _check_output_bytes(output_bytes, "cgt-00000000000000-00000")
        self.quoted_timestamps = quoted_timestamps
        self.endpoints = {**DEFAULT_ENDPOINTS, **(endpoints or {})}
        self.max_queued_per_key = max_queued_per_key
        if list_order not in LIST_ORDERS:
            raise ValueError(f"list_order must be one of {', '.join(LIST_ORDERS)}")
        if refused_delete_status not in REFUSED_DELETE_STATUSES:
            raise ValueError(f"refused_delete_status must be one of {REFUSED_DELETE_STATUSES}")
        for name, limit in (("max_task_ids", max_task_ids), ("max_request_line", max_request_line)):
            if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
                raise ValueError(f"{name} must be a positive integer or None")
        self.list_order = list_order
        # Too many filter.task_ids: 400 InvalidParameter, like an API that counts them.
        self.max_task_ids = max_task_ids
        # A request line (method, path and query) longer than this: 414, like a proxy.
        self.max_request_line = max_request_line
        self.refused_delete_status = refused_delete_status
        # [T - 7 d, T) open at T: a task created in the request's second is not visible yet.
        # Off by default in-process only because tests on a frozen clock read back at once;
        # the server (arksim CLI) is exact unless told otherwise.
        self.exact_window = exact_window
        self._account_of = _accounts_of(self.api_keys, key_groups)
        self.clock = clock or SimClock()
        self.faults = Faults()
        self._rng = random.Random(rng_seed)
        self._url_secret = secrets.token_bytes(32)
        self._limiter = RateLimiter(
            {"list": list_rate_per_second, "get": get_rate_per_second, "delete": delete_rate_per_second}
        )
        self._callbacks = CallbackDispatcher(callback_transport)
        # Re-entrant: a callback receiver or a handler may call back into the simulator.
        self._lock = threading.RLock()
        self._tasks: dict[str, SimTask] = {}
        self._changing: set[str] = set()  # ids whose status still changes by itself
        self._outputs: dict[str, OutputSpec] = {}  # survive the record's deletion, like presigned URLs
        self._stats: Counter[str] = Counter()
        self._last_purge = self.clock.now()
        self._refusals: dict[tuple[str, str], tuple[float, ArkHttpError]] = {}

        from .app import SimApp  # the app needs the class defined first

        self.wsgi_app = SimApp(self)

    # ----------------------------------------------------------------- plumbing

    def transport(self) -> httpx.BaseTransport:
        """An httpx transport that sends requests straight into this simulator."""
        return SimTransport(app=self.wsgi_app)

    @property
    def default_key(self) -> str:
        return self.api_keys[0]

    def account_of(self, api_key: str) -> str:
        """The account a key belongs to: keys grouped together see the same tasks."""
        return self._account_of.get(api_key, api_key)

    def _same_account(self, task: SimTask, api_key: str) -> bool:
        return self.account_of(task.api_key) == self.account_of(api_key)

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.tick()

    def tick(self) -> None:
        """Apply every status change that is due and deliver the callbacks they cause."""
        with self._lock:
            now = self.clock.now()
            events = self._apply_due_transitions(now)
            if now - self._last_purge >= PURGE_EVERY:
                self._purge(now)
        self._callbacks.deliver(events)

    def _purge(self, now: float) -> None:
        """Drop records long past the 7-day window so a demo running for weeks stays fast."""
        self._last_purge = now
        cutoff = now - PURGE_AFTER
        for task_id in [task_id for task_id, task in self._tasks.items() if task.created_at < cutoff]:
            del self._tasks[task_id]
            self._changing.discard(task_id)
        for task_id in [task_id for task_id, spec in self._outputs.items() if spec.expires_at < cutoff]:
            del self._outputs[task_id]

    def _apply_due_transitions(self, now: float) -> list[CallbackEvent]:
        events: list[CallbackEvent] = []
        for task_id in sorted(self._changing):
            task = self._tasks[task_id]
            while (step := task.next_transition()) is not None and step[0] <= now:
                at, status = step
                task.move_to(status, at)
                if status == "succeeded":
                    self._register_outputs(task)
                events += self._callback_events(task)
            if task.status == "cancelled" and now >= task.status_since + CANCELLED_TTL:
                del self._tasks[task_id]  # Ark forgets cancelled tasks 24 h after the cancel
            if task.status not in ACTIVE_STATUSES or task_id not in self._tasks:
                self._changing.discard(task_id)
        return events

    def _callback_events(self, task: SimTask) -> list[CallbackEvent]:
        if not task.callback_url or task.status not in CALLBACK_STATUSES:
            return []
        payload = self._task_object(task)
        return [CallbackEvent(task.callback_url, task.status, task.id, payload)]

    def _register_outputs(self, task: SimTask) -> None:
        self._outputs[task.id] = OutputSpec(
            task_id=task.id,
            kind=task.kind,
            succeeded_at=task.succeeded_at or task.status_since,
            ratio=task.fields.get("ratio", "16:9"),
            seconds=_video_seconds(task.fields),
            return_last_frame=task.return_last_frame,
            output_bytes=task.output_bytes if task.output_bytes is not None else self.output_bytes,
            fileformat=task.fields.get("fileformat", "glb"),
            subdivisionlevel=task.fields.get("subdivisionlevel", "medium"),
        )

    def _task_object(self, task: SimTask) -> dict[str, Any]:
        spec = self._outputs.get(task.id)
        urls = outputs.content_urls(self.public_base_url, self._url_secret, spec) if spec else {}
        return task_object(task, urls=urls, quoted_timestamps=self.quoted_timestamps)

    def count(self, name: str) -> None:
        with self._lock:
            self._stats[name] += 1

    def stats(self) -> dict[str, int]:
        with self._lock:
            result = {name: 0 for name in API_ENDPOINTS}
            result.update({f"{name}_429": 0 for name in API_ENDPOINTS})
            result.update({"callbacks": 0, "callback_failures": 0, "faults": 0})
            result.update(self._stats)
            result.update(self._callbacks.counts)
            return result

    def reset_stats(self) -> None:
        with self._lock:
            self._stats.clear()
            self._callbacks.counts.clear()

    def check_rate(self, *, key: str, endpoint: str) -> None:
        wait = self._limiter.check(key=key, endpoint=endpoint, now=self.clock.now())
        if wait is not None:
            self.count(f"{endpoint}_429")
            raise ArkHttpError(
                429,
                errors.RATE_LIMITED,
                f"The request rate of the {endpoint} endpoint exceeded the account's limit; retry later.",
                headers={"Retry-After": str(wait)},
            )

    # ----------------------------------------------------------------- creating tasks

    def create_task(self, body: dict, api_key: str | None = None) -> str:
        """Create a task exactly like POST /contents/generations/tasks. Raises ArkHttpError."""
        api_key = api_key or self.default_key
        request = parse_create(body, endpoints=self.endpoints)
        self.tick()  # the queued-task quota counts current states
        with self._lock:
            now = self.clock.now()
            if self.max_queued_per_key is not None:
                queued = sum(1 for t in self._tasks.values() if self._same_account(t, api_key) and t.status == "queued")
                if queued >= self.max_queued_per_key:
                    raise ArkHttpError(
                        429,
                        "QuotaExceeded",
                        f"The account already has {queued} queued tasks, the most it may have.",
                    )
            task = self._task_from_request(request, api_key=api_key, now=now)
            self._store(task)
            events = self._callback_events(task)
        self._callbacks.deliver(events)
        return task.id

    def _task_from_request(self, request: CreateRequest, *, api_key: str, now: float) -> SimTask:
        options = request.options
        if request.kind == "video":
            fields = video_fields(options, default_resolution=request.model.default_resolution, rng=self._rng)
            if request.draft_task_id:
                fields["draft_task_id"] = request.draft_task_id
            failure = VIDEO_FAILURE if request.will_fail else None
            expires_after = options.get("execution_expires_after", EXPIRES_DEFAULT)
        else:
            fields = three_d_fields(options)
            failure = THREE_D_FAILURE if request.will_fail else None
            expires_after = None
        return SimTask(
            id=self._new_id(now),
            api_key=api_key,
            kind=request.kind,
            model=request.model.name,
            endpoint=request.endpoint,
            status="queued",
            created_at=int(now),
            status_since=now,
            fields=fields,
            service_tier=options.get("service_tier", "default"),
            execution_expires_after=expires_after,
            return_last_frame=bool(options.get("return_last_frame", False)),
            callback_url=options.get("callback_url"),
            failure=dict(failure) if failure else None,
            queue_seconds=self.queue_seconds,
            run_seconds=self.run_seconds,
            tokens=usage_tokens(request.kind, fields),
        )

    def _new_id(self, created_at: float) -> str:
        while True:
            task_id = task_id_for(created_at, self._rng)
            if task_id not in self._tasks and task_id not in self._outputs:
                return task_id

    def _store(self, task: SimTask) -> None:
        self._tasks[task.id] = task
        if task.status in ACTIVE_STATUSES:
            self._changing.add(task.id)
        if task.status == "succeeded":
            self._register_outputs(task)

    def add_task(
        self,
        *,
        kind: str = "video",
        status: str = "queued",
        created_at: float | None = None,
        model: str | None = None,
        endpoint: str | None = None,
        api_key: str | None = None,
        return_last_frame: bool = True,
        file_format: str = "glb",
        error_code: str | None = None,
        output_bytes: int | None = None,
        callback_url: str | None = None,
        updated_at: float | None = None,
        queue_seconds: float | None = None,
        run_seconds: float | None = None,
        **params: Any,
    ) -> str:
        """Seed a task directly in any status (tests, demo). Returns its id.

        `params` are task options as in a create body (resolution, ratio, duration, frames,
        seed, service_tier, execution_expires_after, subdivisionlevel, generate_audio, ...).
        `updated_at` defaults to when the status would naturally have been reached (but
        never after now). `error_code` makes a failed (or a future failing) task carry that code.
        """
        if kind not in ("video", "3d"):
            raise ValueError("kind must be 'video' or '3d'")
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}")
        if status == "expired" and kind == "3d":
            raise ValueError("only video tasks expire")
        if "fileformat" in params:
            file_format = params.pop("fileformat")
        model_info = resolve_model(
            model or (SEED3D_MODEL if kind == "3d" else DEFAULT_VIDEO_MODEL), self.endpoints
        )
        if model_info is None or model_info.kind != kind:
            raise ValueError(f"model {model!r} is not a known {kind} model (known: {', '.join(MODELS)})")
        api_key = api_key or self.default_key
        if api_key not in self.api_keys:
            raise ValueError("api_key is not one of the simulator's keys")
        unknown = set(params) - TASK_OPTIONS
        if unknown:
            raise TypeError(f"unknown task option(s): {', '.join(sorted(unknown))}")
        options = {name: value for name, value in params.items() if value is not None}
        if kind == "3d":
            options["fileformat"] = file_format
        try:
            check_options(options, kind=kind)
        except ArkHttpError as error:
            raise ValueError(error.message) from None

        with self._lock:
            now = self.clock.now()
            created = int(now if created_at is None else created_at)
            queue_s = self.queue_seconds if queue_seconds is None else float(queue_seconds)
            run_s = self.run_seconds if run_seconds is None else float(run_seconds)
            if kind == "video":
                fields = video_fields(
                    options, default_resolution=model_info.default_resolution, rng=self._rng
                )
                expires_after = options.get("execution_expires_after", EXPIRES_DEFAULT)
            else:
                fields = three_d_fields(options)
                expires_after = None
            failure = None
            if error_code or status == "failed":
                default = VIDEO_FAILURE if kind == "video" else THREE_D_FAILURE
                code = error_code or default["code"]
                failure = {"code": code, "message": FAILURE_MESSAGES.get(code, f"The task failed: {code}.")}
            if updated_at is None:
                elapsed = {"running": queue_s, "succeeded": queue_s + run_s, "failed": queue_s + run_s,
                           "expired": float(expires_after or 0)}.get(status, 0.0)  # fmt: skip
                updated_at = max(created, min(created + elapsed, now))
            task = SimTask(
                id=self._new_id(created),
                api_key=api_key,
                kind=kind,
                model=model_info.name,
                endpoint=endpoint or model or model_info.name,
                status=status,
                created_at=created,
                status_since=float(updated_at),
                fields=fields,
                service_tier=options.get("service_tier", "default"),
                execution_expires_after=expires_after,
                return_last_frame=bool(return_last_frame) and kind == "video",
                callback_url=callback_url,
                failure=failure,
                queue_seconds=queue_s,
                run_seconds=run_s,
                output_bytes=output_bytes,
                tokens=usage_tokens(kind, fields),
                succeeded_at=float(updated_at) if status == "succeeded" else None,
            )
            if output_bytes is not None and kind == "video":
                _check_output_bytes(output_bytes, task.id, task.fields["ratio"])
            self._store(task)
            return task.id

    def seed_demo(self, count: int = 60) -> list[str]:
        """A lively mix of tasks in every status over the last 6.5 days (see arksim.demo)."""
        from .demo import seed_demo

        return seed_demo(self, count=count, rng=self._rng)

    # ----------------------------------------------------------------- reading and acting

    def _visible_task(self, api_key: str, task_id: str) -> SimTask:
        task = self._tasks.get(task_id)
        if task is None or not self._same_account(task, api_key) or not self._visible(task, self.clock.now()):
            raise errors.task_not_found(task_id)
        return task

    def _visible(self, task: SimTask, now: float) -> bool:
        if self.exact_window and task.created_at >= int(now):
            return False
        return task.visible_at(now)

    def get_task(self, api_key: str, task_id: str) -> dict[str, Any]:
        self.tick()
        with self._lock:
            return self._task_object(self._visible_task(api_key, task_id))

    def list_tasks(
        self,
        api_key: str,
        *,
        page_num: int = 1,
        page_size: int = 10,
        status: str | None = None,
        task_ids: list[str] | None = None,
        model: str | None = None,
        service_tier: str | None = None,
    ) -> dict[str, Any]:
        self.tick()
        with self._lock:
            now = self.clock.now()
            wanted = set(task_ids) if task_ids else None
            matches = [
                task
                for task in self._tasks.values()
                if self._same_account(task, api_key)
                and self._visible(task, now)
                and (status is None or task.status == status)
                and (wanted is None or task.id in wanted)
                and (model is None or task.endpoint == model)
                and (service_tier is None or task.service_tier == service_tier)
            ]
            if self.list_order == "shuffled":
                self._rng.shuffle(matches)  # a different order on every call
            else:
                matches.sort(key=lambda task: (task.created_at, task.id), reverse=self.list_order == "newest")
            start = (page_num - 1) * page_size
            page = matches[start : start + page_size]
            return {"total": len(matches), "items": [self._task_object(task) for task in page]}

    def delete_task(self, api_key: str, task_id: str) -> None:
        """Ark's DELETE state table: cancel queued, delete finished, refuse running/cancelled.

        A refusal holds REFUSAL_HOLD_SECONDS for the same task and account: a retried
        refusal gets the same answer even if the task finished meanwhile.
        """
        self.tick()
        with self._lock:
            now = self.clock.now()
            hold = (self.account_of(api_key), task_id)
            self._refusals = {k: v for k, v in self._refusals.items() if now - v[0] < REFUSAL_HOLD_SECONDS}
            if hold in self._refusals:
                raise self._refusals[hold][1]
            task = self._visible_task(api_key, task_id)
            if task.status == "queued":
                task.move_to("cancelled", self.clock.now())
                self._changing.add(task.id)  # it will vanish 24 h from now
            elif task.status in ("succeeded", "failed", "expired"):
                del self._tasks[task.id]
                self._changing.discard(task.id)
            else:
                if task.status == "running":
                    message = f"The task {task.id} is running: a running task can be neither cancelled nor deleted."
                else:
                    message = (
                        f"The task {task.id} is already cancelled; Ark deletes cancelled tasks by itself "
                        "24 hours after the cancel."
                    )
                status = self.refused_delete_status
                refusal = ArkHttpError(status, REFUSED_DELETE_CODES[status], message, param="id")
                self._refusals[hold] = (now, refusal)
                raise refusal

    def task_json(self, task_id: str) -> dict[str, Any] | None:
        """The task object as its owner would GET it now (ignores the 7-day window), or None."""
        self.tick()
        with self._lock:
            task = self._tasks.get(task_id)
            return self._task_object(task) if task else None

    # ----------------------------------------------------------------- outputs

    def output_spec(self, task_id: str) -> OutputSpec | None:
        with self._lock:
            return self._outputs.get(task_id)

    def output_url_secret(self) -> bytes:
        return self._url_secret

    def output_sha256(self, task_id: str, output: str) -> str:
        """The sha256 of the bytes the simulator serves for this output."""
        spec = self._require_output(task_id, output)
        return outputs.sha256_of(spec, output)

    def output_size(self, task_id: str, output: str) -> int:
        spec = self._require_output(task_id, output)
        return outputs.blob_for(spec, output).size

    def output_url(self, task_id: str, output: str) -> str:
        spec = self._require_output(task_id, output)
        return outputs.output_url(self.public_base_url, self._url_secret, spec, output)

    def outputs_info(self, task_id: str) -> dict[str, dict[str, Any]]:
        spec = self.output_spec(task_id)
        if spec is None:
            raise KeyError(f"task {task_id} has no outputs (unknown or not succeeded)")
        return {
            output: {
                "sha256": self.output_sha256(task_id, output),
                "size": self.output_size(task_id, output),
                "url": self.output_url(task_id, output),
            }
            for output in spec.outputs()
        }

    def _require_output(self, task_id: str, output: str) -> OutputSpec:
        if output not in outputs.OUTPUT_FILES:
            raise ValueError(f"output must be one of {', '.join(outputs.OUTPUT_FILES)}")
        spec = self.output_spec(task_id)
        if spec is None or output not in spec.outputs():
            raise KeyError(f"task {task_id} has no {output} output")
        return spec

    # ----------------------------------------------------------------- server mode

    def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        realtime: bool = True,
        public_base_url: str | None = None,
    ) -> ServerHandle:
        """Run as a real HTTP server in background threads (see arksim.server).

        The clock then follows wall time (realtime=False keeps it frozen for tests that
        drive it over /_sim/clock), and output URLs point at the server.
        """
        from .server import serve

        return serve(self, host=host, port=port, realtime=realtime, public_base_url=public_base_url)

    def start_background_callbacks(self) -> None:
        self._callbacks.start()

    def stop_background_callbacks(self) -> None:
        self._callbacks.stop()


def _video_seconds(fields: dict[str, Any]) -> float:
    """How long a video task's clip should last: its duration, or frames at its frame rate."""
    fps = fields.get("framespersecond") or 24
    if fields.get("frames"):
        return fields["frames"] / fps
    return float(fields.get("duration") or 5)


def _accounts_of(api_keys: tuple[str, ...], key_groups: Iterable[Iterable[str]]) -> dict[str, str]:
    """Map each grouped key to its group's account (named after its first key)."""
    account_of: dict[str, str] = {}
    for group in key_groups:
        keys = list(group)
        unknown = [key for key in keys if key not in api_keys]
        if unknown or not keys:
            raise ValueError("key_groups must list the simulator's own keys")
        for key in keys:
            if key in account_of:
                raise ValueError("a key can belong to one account only")
            account_of[key] = keys[0]
    return account_of


def _check_output_bytes(output_bytes: int, task_id: str, ratio: str = "16:9") -> None:
    if not isinstance(output_bytes, int) or isinstance(output_bytes, bool):
        raise ValueError("output_bytes must be an integer")
    smallest = max(video_min_size(r, task_id) for r in (*RATIO_FILES, ratio))
    if output_bytes < smallest:
        raise ValueError(f"output_bytes must be at least {smallest} (the natural size of the videos)")


class SimTransport(httpx.WSGITransport):
    """WSGITransport that turns a `drop` fault into the error httpx raises for a real drop."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return super().handle_request(request)
        except ConnectionDropped:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            ) from None
