"""Demo data: a believable week of video and 3D work, and a trickle of new tasks for a live screen."""

from __future__ import annotations

import logging
import random
import threading
from typing import TYPE_CHECKING, Any

from .catalog import DEFAULT_ENDPOINTS, SEED3D_MODEL
from .errors import ArkHttpError
from .tasks import DAY, STATUSES

if TYPE_CHECKING:
    from .simulator import Simulator

log = logging.getLogger("arksim")

VIDEO_MODELS = (
    "doubao-seedance-1-0-pro-250528",
    "doubao-seedance-1-0-pro-fast-251015",
    "doubao-seedance-1-0-lite-t2v-250428",
    "doubao-seedance-1-5-pro-251215",
)
PROMPTS = (
    "A red panda drinking tea in a bamboo forest at dawn, slow dolly in",
    "Drone shot over terraced rice fields in Yunnan, golden hour",
    "A paper boat sailing down a rainy street gutter, macro lens",
    "Neon-lit night market in Chongqing, handheld camera, light rain",
    "A ceramic teapot rotating on a turntable, studio lighting",
    "Astronaut planting a tree on Mars, cinematic wide shot",
    "Koi fish swimming in a clear pond, top-down view",
    "Time-lapse of clouds rolling over the Yellow Mountains",
)
VIDEO_ERRORS = (
    "OutputVideoSensitiveContentDetected.PolicyViolation",
    "InputTextSensitiveContentDetected",
    "InternalServiceError",
)
THREE_D_ERRORS = ("InputImageSensitiveContentDetected.PolicyViolation", "InternalServiceError")
# Rough shares of a real account's history.
STATUS_WEIGHTS = {"succeeded": 55, "failed": 10, "expired": 5, "cancelled": 6, "queued": 12, "running": 12}
DEMO_SPAN = 6.5 * DAY
# Output URLs live 24 h: most demo successes are recent enough that ArkDash can still
# archive them; the rest show what a lost output looks like.
LIVE_SHARE = 0.85
# Some queued tasks wait this long, so "cancel" can be tried on them (Ark caps an
# account at about 120 queued tasks; the demo stays far below).
HELD_QUEUE_SECONDS = (600.0, 1500.0)
HELD_SHARE = 0.5


def _endpoint_for(model: str, rng: random.Random) -> str:
    """Half the tasks go through an inference endpoint id, like console users do."""
    endpoints = [ep for ep, target in DEFAULT_ENDPOINTS.items() if target == model]
    return rng.choice(endpoints) if endpoints and rng.random() < 0.5 else model


def _video_params(rng: random.Random) -> dict[str, Any]:
    params: dict[str, Any] = {
        "resolution": rng.choice(("480p", "720p", "1080p")),
        "ratio": rng.choice(("16:9", "16:9", "9:16", "1:1", "4:3", "21:9")),
        "service_tier": "flex" if rng.random() < 0.2 else "default",
    }
    if rng.random() < 0.2:
        params["frames"] = rng.choice((49, 97, 121))
    else:
        params["duration"] = rng.choice((5, 5, 10))
    return params


def seed_demo(sim: Simulator, *, count: int, rng: random.Random) -> list[str]:
    now = sim.clock.now()
    statuses = list(STATUSES)  # every status at least once, then weighted
    statuses += rng.choices(list(STATUS_WEIGHTS), weights=list(STATUS_WEIGHTS.values()), k=max(0, count - 6))
    specs = []
    for status in statuses[:count]:
        kind = "3d" if status != "expired" and rng.random() < 0.25 else "video"
        specs.append(_demo_task(kind, status, now, rng))
    # Whatever the draw (when there is room), a few things to try at once: tasks to
    # cancel, and a model in each 3D format to look at.
    extras = []
    for _ in range(3):
        task = _demo_task("video", "queued", now, rng)
        task["queue_seconds"] = rng.uniform(*HELD_QUEUE_SECONDS)
        extras.append(task)
    for fileformat in ("glb", "obj", "usd", "usdz"):
        task = _demo_task("3d", "succeeded", now, rng, live=True)
        task["fileformat"] = fileformat
        extras.append(task)
    if count >= len(STATUSES) + len(extras):
        specs[len(STATUSES) : len(STATUSES) + len(extras)] = extras
    return [sim.add_task(**spec) for spec in specs]


def _demo_task(
    kind: str, status: str, now: float, rng: random.Random, *, live: bool | None = None
) -> dict[str, Any]:
    model = SEED3D_MODEL if kind == "3d" else rng.choice(VIDEO_MODELS)
    task: dict[str, Any] = {
        "kind": kind,
        "status": status,
        "model": model,
        "endpoint": _endpoint_for(model, rng),
    }
    if kind == "3d":
        task["fileformat"] = rng.choice(("glb", "glb", "obj", "usd", "usdz"))
        task["subdivisionlevel"] = rng.choice(("low", "medium", "high"))
    else:
        task.update(_video_params(rng))
        task["return_last_frame"] = rng.random() < 0.7

    if status in ("queued", "running"):
        # Recent, with human-scale timings so they visibly move on while someone watches.
        held = rng.random() < HELD_SHARE
        task["queue_seconds"] = rng.uniform(*HELD_QUEUE_SECONDS) if held else rng.uniform(20, 180)
        task["run_seconds"] = rng.uniform(40, 240)
        age = rng.uniform(0, min(task["queue_seconds"] / 2, 120)) if status == "queued" else rng.uniform(0, 60)
        task["created_at"] = now - age
        if status == "running":
            task["updated_at"] = now - rng.uniform(0, min(age, 30))
            task["created_at"] = task["updated_at"] - rng.uniform(5, 60)
    elif status == "cancelled":
        created = now - rng.uniform(600, 20 * 3600)  # cancelled tasks only live 24 h
        task["created_at"], task["updated_at"] = created, created + rng.uniform(10, 300)
    elif status == "expired":
        expires_after = rng.choice((3600, 86400, 172800))
        task["execution_expires_after"] = expires_after
        task["created_at"] = now - rng.uniform(expires_after + 600, DEMO_SPAN)
    elif status == "succeeded":
        live = rng.random() < LIVE_SHARE if live is None else live
        # Live: succeeded within the last 22 h, so its URLs still work when ArkDash first looks.
        task["created_at"] = now - (rng.uniform(120, 22 * 3600) if live else rng.uniform(26 * 3600, DEMO_SPAN))
    else:
        task["created_at"] = now - rng.uniform(120, DEMO_SPAN)
        if status == "failed":
            task["error_code"] = rng.choice(THREE_D_ERRORS if kind == "3d" else VIDEO_ERRORS)
    return task


def random_create_body(rng: random.Random) -> dict[str, Any]:
    """A create-task body like a user would send, sometimes one that will fail."""
    prompt = rng.choice(PROMPTS)
    if rng.random() < 0.1:
        prompt += " [fail]"
    if rng.random() < 0.25:
        return {
            "model": _endpoint_for(SEED3D_MODEL, rng),
            "content": [
                {"type": "image_url", "image_url": {"url": "https://example.com/reference.png"}},
                {"type": "text", "text": prompt},
            ],
            "subdivisionlevel": rng.choice(("low", "medium", "high")),
            "fileformat": rng.choice(("glb", "obj", "usd", "usdz")),
        }
    model = rng.choice(VIDEO_MODELS)
    return {
        "model": _endpoint_for(model, rng),
        "content": [{"type": "text", "text": prompt}],
        "return_last_frame": rng.random() < 0.7,
        **_video_params(rng),
    }


class Trickle:
    """Creates a random task every `every_seconds` (wall clock) until stopped."""

    def __init__(self, sim: Simulator, every_seconds: float, *, rng_seed: int | None = None) -> None:
        if every_seconds <= 0:
            raise ValueError("every_seconds must be positive")
        self._sim = sim
        self._every = every_seconds
        self._rng = random.Random(rng_seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="arksim-trickle", daemon=True)

    def start(self) -> Trickle:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                task_id = self._sim.create_task(random_create_body(self._rng))
                if self._rng.random() < HELD_SHARE / 2:
                    self._hold(task_id, self._rng.uniform(*HELD_QUEUE_SECONDS))
                log.info("demo trickle created %s", task_id)
            except ArkHttpError as error:  # e.g. the queued-task quota is full
                log.info("demo trickle skipped: %s", error.message)

    def _hold(self, task_id: str, seconds: float) -> None:
        """Keep a new task queued for minutes, so there is always something to cancel."""
        with self._sim._lock:
            task = self._sim._tasks.get(task_id)
            if task is not None and task.status == "queued":
                task.queue_seconds = seconds
