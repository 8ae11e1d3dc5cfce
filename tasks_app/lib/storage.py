"""Archive storage: keys, atomic streaming writes, reads and deletes.

`STORAGES["archive"]` is either Django's FileSystemStorage (default) or
django-storages' S3Storage. Django's Storage.save() wants a whole file and writes
in place, which can leave a half-written file under its final name; so writes go
through an ArchiveWriter instead:

- local disk: the bytes go to `<final>.partial-<token>` in the same directory, are
  fsynced, and os.replace() gives them the final name in one step;
- S3: a multipart upload (one part buffer per upload in flight, so memory stays
  bounded) that is completed only when the caller publishes after verifying, and
  aborted on any error; objects smaller than one part use a single PUT, which is
  atomic too. Either way no partial object is ever visible under the key.

Only the worker holding an artifact's claim writes its key, so opening a writer
clears what a dead predecessor left behind for that key (partial files, unfinished
multipart uploads).
"""

from __future__ import annotations

import bisect
import io
import itertools
import logging
import mimetypes
import os
import re
import secrets
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from django.conf import settings
from django.core.files.storage import FileSystemStorage, Storage, storages

logger = logging.getLogger(__name__)

PARTIAL_MARK = ".partial-"
LOCAL_BUFFER = 1024 * 1024
WRITEBACK_EVERY = 16 * 1024 * 1024
MIN_S3_PART = 5 * 1024 * 1024  # S3's minimum for every part but the last


class StorageError(Exception):
    """Archive storage refused or failed an operation; the message is safe to show."""


def archive_storage() -> Storage:
    return storages["archive"]


def is_s3(storage: Storage) -> bool:
    # Checked by name so the local-only setup never imports boto3.
    return any(cls.__name__ == "S3Storage" for cls in type(storage).__mro__)


_UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def safe_key_part(value: str) -> str:
    """A path segment built from remote data (task ids): no separators, no dots-only names."""
    cleaned = _UNSAFE_KEY_CHARS.sub("_", value).strip("._") or "_"
    return cleaned[:120]


def artifact_key(*, account_id: int, ark_id: str, filename: str) -> str:
    """Where an output lives: one folder per task, under its account."""
    return f"outputs/{account_id}/{safe_key_part(ark_id)}/{safe_key_part(filename)}"


class ArchiveWriter(Protocol):
    key: str
    bytes_written: int

    def write(self, chunk: bytes) -> None: ...

    def publish(self) -> None:
        """Make the bytes visible under the key, all at once. Only after verifying them."""

    def discard(self) -> None:
        """Drop everything written; nothing becomes visible. Safe to call twice."""


def open_writer(key: str, *, content_type: str = "", storage: Storage | None = None) -> ArchiveWriter:
    storage = storage or archive_storage()
    if isinstance(storage, FileSystemStorage):
        return LocalWriter(storage, key)
    if is_s3(storage):
        return S3MultipartWriter(storage, key, content_type=content_type)
    raise StorageError(f"archive storage {type(storage).__name__} is not supported (use local disk or S3)")


class LocalWriter:
    """Writes `<final>.partial-<token>`; publish() fsyncs and renames it to the final name.

    Every few MiB the written range is handed to the kernel for write-back
    (POSIX_FADV_DONTNEED starts it without waiting), so the fsync before the rename
    has little left to do, and archived videos do not crowd the page cache.
    """

    def __init__(self, storage: FileSystemStorage, key: str) -> None:
        self.key = key
        self.bytes_written = 0
        self.final_path = Path(storage.path(key))
        self.final_path.parent.mkdir(
            parents=True, exist_ok=True, mode=storage.directory_permissions_mode or 0o777
        )
        _remove_partials(self.final_path)
        self.partial_path = self.final_path.with_name(
            f"{self.final_path.name}{PARTIAL_MARK}{secrets.token_hex(8)}"
        )
        mode = storage.file_permissions_mode or 0o600  # settings: ARKDASH_FILE_MODE
        fd = os.open(
            self.partial_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode
        )
        self._file: BinaryIO | None = os.fdopen(fd, "wb", buffering=LOCAL_BUFFER)
        self._done = False
        self._written_back = 0

    def write(self, chunk: bytes) -> None:
        if self._file is None:
            raise StorageError("write after publish or discard")
        try:
            self._file.write(chunk)
        except OSError as exc:
            raise StorageError(f"could not write {self.key} ({exc.strerror or exc})") from None
        self.bytes_written += len(chunk)
        if self.bytes_written - self._written_back >= WRITEBACK_EVERY and hasattr(os, "posix_fadvise"):
            self._file.flush()
            os.posix_fadvise(
                self._file.fileno(),
                self._written_back,
                self.bytes_written - self._written_back,
                os.POSIX_FADV_DONTNEED,
            )
            self._written_back = self.bytes_written

    def publish(self) -> None:
        if self._file is None:
            raise StorageError("publish after discard")
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            os.replace(self.partial_path, self.final_path)
            _fsync_dir(self.final_path.parent)
            self._done = True
        except OSError as exc:
            self.discard()
            raise StorageError(f"could not publish {self.key} ({exc.strerror or exc})") from None

    def discard(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None
        if not self._done:
            try:
                self.partial_path.unlink()
            except FileNotFoundError:
                pass


def _remove_partials(final_path: Path) -> None:
    for leftover in final_path.parent.glob(f"{final_path.name}{PARTIAL_MARK}*"):
        try:
            leftover.unlink()
        except FileNotFoundError:
            pass


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable; not possible on every platform.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def s3_object(storage: Any, key: str) -> tuple[Any, str, str]:
    """The boto3 client, bucket and object key behind an S3Storage name.

    The one place that reaches into django-storages: it has no public way to give the
    client (boto3 clients are thread-safe) or the object key its name rules make
    (location prefix, no escaping the prefix).
    """
    from storages.utils import clean_name

    return storage.connection.meta.client, storage.bucket_name, storage._normalize_name(clean_name(key))


def _s3_settings() -> tuple[int, int]:
    part_mb = int(getattr(settings, "ARKDASH_ARCHIVE_S3_PART_MB", 5))
    concurrency = int(getattr(settings, "ARKDASH_ARCHIVE_S3_CONCURRENCY", 2))
    return max(part_mb * 1024 * 1024, MIN_S3_PART), max(concurrency, 1)


class S3MultipartWriter:
    """A multipart upload that is completed by publish() and aborted on anything else."""

    def __init__(self, storage: Any, key: str, *, content_type: str = "") -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        self._boto_errors = (BotoCoreError, ClientError)
        self.key = key
        self.bytes_written = 0
        self.client, self.bucket, self.object_key = s3_object(storage, key)
        self.part_size, self.concurrency = _s3_settings()
        params = storage.get_object_parameters(self.object_key)
        params.setdefault(
            "ContentType", content_type or mimetypes.guess_type(key)[0] or "application/octet-stream"
        )
        if getattr(storage, "default_acl", None) and "ACL" not in params:
            params["ACL"] = storage.default_acl
        self._params = params
        # Pieces of the next part, sent as they are (a _PartBody), never joined into a copy.
        self._pieces: list[bytes] = []
        self._pending_bytes = 0
        self._upload_id: str | None = None
        self._parts: list[Future] = []
        self._parts_in_memory = threading.BoundedSemaphore(self.concurrency)
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False
        self._call(self._abort_leftovers)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except self._boto_errors as exc:
            raise StorageError(f"S3 {fn.__name__.strip('_')} failed for {self.key} ({exc})") from None

    def _abort_leftovers(self) -> None:
        listing = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=self.object_key)
        for upload in listing.get("Uploads", []):
            if upload["Key"] == self.object_key:
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self.object_key, UploadId=upload["UploadId"]
                )

    def write(self, chunk: bytes) -> None:
        if self._closed:
            raise StorageError("write after publish or discard")
        if not self._pieces and self._upload_id is not None:
            self._wait_for_room()
        self._pieces.append(bytes(chunk))
        self._pending_bytes += len(chunk)
        self.bytes_written += len(chunk)
        if self._pending_bytes >= self.part_size:
            self._send_part(self._take_pieces())

    def _take_pieces(self) -> _PartBody:
        # Parts need not be exactly part_size: at least 5 MiB except the last is all S3 asks.
        body = _PartBody(self._pieces)
        self._pieces, self._pending_bytes = [], 0
        return body

    def _send_part(self, body: _PartBody) -> None:
        if self._upload_id is None:
            created = self._call(
                self.client.create_multipart_upload, Bucket=self.bucket, Key=self.object_key, **self._params
            )
            self._upload_id = created["UploadId"]
            self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="s3-part")
            self._wait_for_room()  # the first part was gathered before the upload existed
        self._raise_failed_part()
        number = len(self._parts) + 1
        assert self._pool is not None
        future = self._pool.submit(self._upload_part, number, body)
        future.add_done_callback(lambda _f: self._parts_in_memory.release())
        self._parts.append(future)

    def _wait_for_room(self) -> None:
        # A part counts from when it starts gathering until its upload ends: at most
        # `concurrency` parts are in memory, however big the file.
        while not self._parts_in_memory.acquire(timeout=0.5):
            self._raise_failed_part()

    def _upload_part(self, number: int, body: _PartBody) -> dict:
        response = self._call(
            self.client.upload_part,
            Bucket=self.bucket,
            Key=self.object_key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=body,
        )
        return {"PartNumber": number, "ETag": response["ETag"]}

    def _raise_failed_part(self) -> None:
        for future in self._parts:
            if future.done() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]

    def publish(self) -> None:
        if self._closed:
            raise StorageError("publish after discard")
        try:
            if self._upload_id is None:
                # Smaller than one part: a single PUT is atomic.
                self._call(
                    self.client.put_object,
                    Bucket=self.bucket,
                    Key=self.object_key,
                    Body=self._take_pieces(),
                    **self._params,
                )
            else:
                if self._pieces:
                    self._send_part(self._take_pieces())
                parts = [future.result() for future in self._parts]
                self._call(
                    self.client.complete_multipart_upload,
                    Bucket=self.bucket,
                    Key=self.object_key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": parts},
                )
            head = self._call(self.client.head_object, Bucket=self.bucket, Key=self.object_key)
            if int(head["ContentLength"]) != self.bytes_written:
                self._call(self.client.delete_object, Bucket=self.bucket, Key=self.object_key)
                raise StorageError(
                    f"S3 holds {head['ContentLength']} bytes for {self.key}, expected {self.bytes_written}"
                )
            self._upload_id = None
            self._closed = True
        except BaseException:
            self.discard()
            raise
        finally:
            self._shutdown_pool()

    def discard(self) -> None:
        self._closed = True
        self._pieces, self._pending_bytes = [], 0
        for future in self._parts:
            future.cancel()
        self._shutdown_pool()
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            try:
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self.object_key, UploadId=upload_id
                )
            except self._boto_errors as exc:
                # The bucket's lifecycle rule for incomplete uploads is the last resort.
                logger.warning("could not abort multipart upload for %s: %s", self.key, exc)

    def _shutdown_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class _PartBody(io.RawIOBase):
    """A part's pieces as one seekable file, so sending a part never copies it whole.

    botocore reads the body to sign it, seeks back and reads it again to send it.
    """

    def __init__(self, pieces: list[bytes]) -> None:
        super().__init__()
        self._pieces = pieces
        self._starts = list(itertools.accumulate((len(p) for p in pieces), initial=0))
        self._size = self._starts[-1]
        self._pos = 0

    def __len__(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = min(max(base + offset, 0), self._size)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view) and self._pos < self._size:
            index = bisect.bisect_right(self._starts, self._pos) - 1
            piece = self._pieces[index]
            offset = self._pos - self._starts[index]
            count = min(len(view) - filled, len(piece) - offset)
            view[filled : filled + count] = memoryview(piece)[offset : offset + count]
            filled += count
            self._pos += count
        return filled


def open_read(key: str, *, storage: Storage | None = None) -> BinaryIO:
    storage = storage or archive_storage()
    try:
        return storage.open(key, "rb")
    except FileNotFoundError:
        raise StorageError(f"{key} is missing from archive storage") from None
    except Exception as exc:  # noqa: BLE001 - backends raise their own types
        raise StorageError(f"could not open {key} ({type(exc).__name__}: {exc})") from None


def delete(key: str, *, storage: Storage | None = None) -> None:
    storage = storage or archive_storage()
    storage.delete(key)
