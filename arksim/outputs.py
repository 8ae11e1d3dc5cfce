"""Output files of succeeded tasks: what each one contains, presigned URLs, and streaming reads.

An output is described, not stored: `OutputSpec` says how to regenerate its bytes, so a
2 GB padded video costs a few kilobytes of memory and its sha256 is computed once, lazily.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import threading
from dataclasses import dataclass
from functools import lru_cache

from . import media, model3d
from .tasks import OUTPUT_TTL

OUTPUT_FILES = {"video": "video.mp4", "last_frame": "last_frame.png", "model_zip": "model.zip"}
OUTPUT_BY_FILE = {name: output for output, name in OUTPUT_FILES.items()}
CONTENT_TYPES = {"video": "video/mp4", "last_frame": "image/png", "model_zip": "application/zip"}
URL_KEYS = {"video": "video_url", "last_frame": "last_frame_url", "model_zip": "file_url"}
CHUNK = 1 << 20
_ZEROS = bytes(CHUNK)


@dataclass(frozen=True)
class OutputSpec:
    """Everything that decides a succeeded task's output bytes, frozen at success."""

    task_id: str
    kind: str
    succeeded_at: float
    ratio: str = "16:9"
    seconds: float = 5.0  # the requested duration (or frames / fps): the clip lasts about that
    return_last_frame: bool = True
    output_bytes: int | None = None
    fileformat: str = "glb"
    subdivisionlevel: str = "medium"

    @property
    def expires_at(self) -> int:
        return int(self.succeeded_at) + OUTPUT_TTL

    def outputs(self) -> list[str]:
        if self.kind == "3d":
            return ["model_zip"]
        return ["video", "last_frame"] if self.return_last_frame else ["video"]


@dataclass(frozen=True)
class Blob:
    """File bytes = `head` followed by `zeros` zero bytes."""

    head: bytes
    zeros: int = 0

    @property
    def size(self) -> int:
        return len(self.head) + self.zeros

    def open(self) -> BlobReader:
        return BlobReader(self)


def blob_for(spec: OutputSpec, output: str) -> Blob:
    if output not in spec.outputs():
        raise KeyError(output)
    if output == "video":
        head, zeros = media.video_parts(spec.task_id, spec.ratio, spec.output_bytes, spec.seconds)
        return Blob(head, zeros)
    if output == "last_frame":
        return Blob(media.last_frame_png(spec.task_id, spec.ratio))
    return Blob(model3d.model_zip(spec.task_id, spec.fileformat, spec.subdivisionlevel))


_sha_lock = threading.Lock()


@lru_cache(maxsize=1024)
def _sha256_cached(spec: OutputSpec, output: str) -> str:
    blob = blob_for(spec, output)
    digest = hashlib.sha256(blob.head)
    remaining = blob.zeros
    while remaining:
        step = min(remaining, CHUNK)
        digest.update(_ZEROS if step == CHUNK else _ZEROS[:step])
        remaining -= step
    return digest.hexdigest()


def sha256_of(spec: OutputSpec, output: str) -> str:
    # One hashing at a time: two threads asking for a fresh 2 GB hash would both compute it.
    with _sha_lock:
        return _sha256_cached(spec, output)


class BlobReader(io.RawIOBase):
    """A seekable read-only file over a Blob, producing zero padding on the fly."""

    def __init__(self, blob: Blob) -> None:
        self._blob = blob
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._blob.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, size: int = -1) -> bytes:
        remaining = self._blob.size - self._pos
        if remaining <= 0:
            return b""
        size = remaining if size is None or size < 0 else min(size, remaining)
        head = self._blob.head
        if self._pos < len(head):
            data = head[self._pos : self._pos + size]
        else:
            data = _ZEROS if size == CHUNK else bytes(min(size, CHUNK))
        self._pos += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def signature(secret: bytes, task_id: str, name: str, expires: int) -> str:
    message = f"{task_id}/{name}:{expires}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:32]


def signature_ok(secret: bytes, task_id: str, name: str, expires: int, given: str) -> bool:
    return hmac.compare_digest(signature(secret, task_id, name, expires), given)


def output_url(base_url: str, secret: bytes, spec: OutputSpec, output: str) -> str:
    name = OUTPUT_FILES[output]
    expires = spec.expires_at
    sig = signature(secret, spec.task_id, name, expires)
    return f"{base_url}/_outputs/{spec.task_id}/{name}?expires={expires}&sig={sig}"


def content_urls(base_url: str, secret: bytes, spec: OutputSpec) -> dict[str, str]:
    return {URL_KEYS[output]: output_url(base_url, secret, spec, output) for output in spec.outputs()}
