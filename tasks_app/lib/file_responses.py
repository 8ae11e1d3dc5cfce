"""HTTP responses for an archived file: Range requests and conditional GETs from local disk,
a short-lived presigned redirect on S3."""

from __future__ import annotations

import mimetypes
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from django.core.files.storage import FileSystemStorage, Storage
from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.utils.http import content_disposition_header, http_date, parse_http_date_safe

from .storage import StorageError, archive_storage, is_s3, open_read

STREAM_CHUNK = 512 * 1024


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class RangeNotSatisfiable(Exception):
    pass


_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)
# No file has an offset of more than 18 digits; a longer number is not a range we could
# honour, and int() of one beyond 4,300 digits raises (Python's guard against slow parsing).
_MAX_OFFSET_DIGITS = 18


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """One byte range from a Range header, None to send the whole file.

    Several ranges, other units or bad syntax are ignored (a full 200 answer is
    allowed by RFC 9110); a well-formed range outside the file is RangeNotSatisfiable.
    """
    if not header:
        return None
    match = _RANGE.match(header)
    if not match:
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if len(first.lstrip("0")) > _MAX_OFFSET_DIGITS or len(last.lstrip("0")) > _MAX_OFFSET_DIGITS:
        return None  # ignored, like any range we cannot honour: the whole file (RFC 9110)
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return ByteRange(max(size - suffix, 0), size - 1)
    start = int(first)
    if last != "" and int(last) < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable
    end = int(last) if last != "" else size - 1
    return ByteRange(start, min(end, size - 1))


class _FileRange:
    """The bytes of one range of an open file, for a StreamingHttpResponse.

    An object with close(), not a generator: Django calls close() when the response is
    done, and closing a generator that never started would not run its cleanup, leaving
    the file open when the client went away before the first byte.
    """

    def __init__(self, file: BinaryIO, start: int, length: int) -> None:
        self._file, self._start, self._length = file, start, length

    def __iter__(self) -> Iterator[bytes]:
        try:
            self._file.seek(self._start)
            remaining = self._length
            while remaining > 0:
                chunk = self._file.read(min(STREAM_CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk
        finally:
            self._file.close()

    def close(self) -> None:
        self._file.close()


def _if_range_allows(request: HttpRequest, *, etag: str, last_modified: datetime | None) -> bool:
    if_range = request.headers.get("If-Range")
    if not if_range:
        return True
    if if_range.startswith(('"', "W/")):
        return if_range == etag
    parsed = parse_http_date_safe(if_range)
    return last_modified is not None and parsed is not None and int(last_modified.timestamp()) <= parsed


def download_response(
    request: HttpRequest,
    *,
    key: str,
    filename: str,
    content_type: str,
    etag: str = "",
    last_modified: datetime | None = None,
    inline: bool = False,
    storage: Storage | None = None,
) -> HttpResponseBase:
    """Serve an archived file: Range-aware from local disk, a presigned redirect on S3."""
    storage = storage or archive_storage()
    disposition = content_disposition_header(not inline, filename)
    content_type = content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
    if is_s3(storage):
        # Expiry: the storage's querystring_expire (ARKDASH_S3_URL_EXPIRE_SECONDS, 5 min).
        url = storage.url(
            key, parameters={"ResponseContentDisposition": disposition, "ResponseContentType": content_type}
        )
        response: HttpResponseBase = HttpResponseRedirect(url)
        response["Cache-Control"] = "private, no-store"  # the URL is a short-lived secret
        return response
    if not isinstance(storage, FileSystemStorage):
        response = FileResponse(open_read(key, storage=storage), content_type=content_type)
        response["Content-Disposition"] = disposition
        return response

    try:
        file = open(storage.path(key), "rb")  # noqa: SIM115 - closed by the response
    except FileNotFoundError:
        raise StorageError(f"{key} is missing from archive storage") from None
    try:
        response = _local_file_response(
            request, file, content_type=content_type, disposition=disposition, etag=etag,
            last_modified=last_modified,
        )
    except BaseException:
        file.close()  # whatever went wrong, the file is not left open
        raise
    if response.status_code in (304, 416) or request.method == "HEAD":
        file.close()  # answers without a body: nothing will read it
    return response


def _local_file_response(
    request: HttpRequest,
    file: BinaryIO,
    *,
    content_type: str,
    disposition: str,
    etag: str,
    last_modified: datetime | None,
) -> HttpResponseBase:
    size = os.fstat(file.fileno()).st_size
    etag = f'"{etag}"' if etag and not etag.startswith('"') else etag

    headers = {
        "Accept-Ranges": "bytes",
        "Content-Disposition": disposition,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, max-age=3600",
    }
    if etag:
        headers["ETag"] = etag
    if last_modified is not None:
        headers["Last-Modified"] = http_date(last_modified.timestamp())

    response: HttpResponseBase
    if etag and request.headers.get("If-None-Match") in (etag, "*"):
        response = HttpResponse(status=304)
        for name, value in headers.items():
            response[name] = value
        return response

    try:
        wanted = parse_range(request.headers.get("Range"), size)
    except RangeNotSatisfiable:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        response["Accept-Ranges"] = "bytes"
        return response
    if wanted is not None and not _if_range_allows(request, etag=etag, last_modified=last_modified):
        wanted = None

    if request.method == "HEAD":
        response = HttpResponse(content_type=content_type)
        response["Content-Length"] = str(wanted.length if wanted else size)
        if wanted:
            response.status_code = 206
            response["Content-Range"] = f"bytes {wanted.start}-{wanted.end}/{size}"
    elif wanted is None:
        response = FileResponse(file, content_type=content_type)
    else:
        response = StreamingHttpResponse(
            _FileRange(file, wanted.start, wanted.length), status=206, content_type=content_type
        )
        response["Content-Length"] = str(wanted.length)
        response["Content-Range"] = f"bytes {wanted.start}-{wanted.end}/{size}"
    for name, value in headers.items():
        response[name] = value
    return response
