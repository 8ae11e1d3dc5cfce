"""Video and last-frame outputs: real mp4/png assets, made unique per task and padded on demand.

Each aspect ratio Ark offers has a small 2-second clip; its timing is stretched to the
task's duration (every sample lasts longer, like a slower frame rate), so a 5 s 16:9
task gets a 16:9 clip that players report as 5 s long, at the size of the 2 s one.
"""

from __future__ import annotations

import struct
import zlib
from fractions import Fraction
from functools import cache
from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"
FREE_BOX_HEADER = 8
FREE_BOX_LARGE_HEADER = 16  # size=1 then a 64-bit size: boxes of 4 GiB and more
MAX_SMALL_BOX = 0xFFFFFFFF
CLIP_SECONDS = 2
RATIO_FILES = {"16:9": "16x9", "9:16": "9x16", "1:1": "1x1", "4:3": "4x3", "3:4": "3x4", "21:9": "21x9"}
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts"}


def ratio_family(ratio: str) -> str:
    """Which shipped clip stands for a requested aspect ratio (adaptive and unknown: 16:9)."""
    return RATIO_FILES.get(ratio, "16x9")


@cache
def _asset(name: str) -> bytes:
    return (ASSETS / name).read_bytes()


@cache
def clip(ratio: str, seconds: float = CLIP_SECONDS) -> bytes:
    """The ratio's clip, retimed to last about `seconds` (same bytes, same size)."""
    data = _asset(f"video_{ratio_family(ratio)}.mp4")
    factor = Fraction(seconds).limit_denominator(1000) / CLIP_SECONDS
    if factor == 1 or factor <= 0:
        return data
    out = bytearray(data)
    _retime(out, 0, len(out), factor)
    return bytes(out)


def mp4_info(data: bytes) -> tuple[int, int, float]:
    """(width, height, seconds) of an mp4's first track, read from its boxes (tests, checks)."""
    found: dict[str, float] = {}

    def walk(start: int, end: int) -> None:
        at = start
        while at + 8 <= end:
            size, kind = struct.unpack_from(">I4s", data, at)
            size = end - at if size == 0 else size
            if size < 8:
                return
            body = at + 8
            if kind in _CONTAINERS:
                walk(body, at + size)
            elif kind == b"mvhd" and "seconds" not in found:
                wide = data[body] == 1
                scale_at = body + (20 if wide else 12)
                timescale = struct.unpack_from(">I", data, scale_at)[0]
                duration = struct.unpack_from(">Q" if wide else ">I", data, scale_at + 4)[0]
                found["seconds"] = duration / timescale
            elif kind == b"tkhd" and "width" not in found:
                size_at = body + (88 if data[body] == 1 else 76)
                width, height = struct.unpack_from(">II", data, size_at)
                found["width"], found["height"] = width / 65536, height / 65536
            at += size

    walk(0, len(data))
    return int(found["width"]), int(found["height"]), found["seconds"]


def _retime(buf: bytearray, start: int, end: int, factor: Fraction) -> None:
    """Scale every duration and time offset in the boxes between start and end, in place."""
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack_from(">I4s", buf, at)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", buf, at + 8)[0], 16
        elif size == 0:
            size = end - at
        if size < header or at + size > end:
            return
        body = at + header
        if kind in _CONTAINERS:
            _retime(buf, body, at + size, factor)
        elif kind in (b"mvhd", b"mdhd"):
            # version 0: times and timescale are 32-bit; version 1: times are 64-bit.
            _scale(buf, body + (24 if buf[body] == 1 else 16), 8 if buf[body] == 1 else 4, factor)
        elif kind == b"tkhd":
            _scale(buf, body + (28 if buf[body] == 1 else 20), 8 if buf[body] == 1 else 4, factor)
        elif kind in (b"stts", b"ctts"):
            count = struct.unpack_from(">I", buf, body + 4)[0]
            for entry in range(count):
                _scale(buf, body + 8 + entry * 8 + 4, 4, factor)
        elif kind == b"elst":
            wide = buf[body] == 1
            count = struct.unpack_from(">I", buf, body + 4)[0]
            step = 20 if wide else 12
            for entry in range(count):
                _scale(buf, body + 8 + entry * step, 8 if wide else 4, factor)  # segment duration
                _scale(buf, body + 8 + entry * step + (8 if wide else 4), 8 if wide else 4, factor)  # media time
        at += size


def _scale(buf: bytearray, offset: int, width: int, factor: Fraction) -> None:
    fmt = ">Q" if width == 8 else ">I"
    value = struct.unpack_from(fmt, buf, offset)[0]
    if value in (0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF):
        return  # "unknown" / "empty edit": not a time
    struct.pack_into(fmt, buf, offset, round(value * factor))


def marker(task_id: str) -> bytes:
    return f"arksim task {task_id}".encode()


def video_min_size(ratio: str, task_id: str) -> int:
    return len(_asset(f"video_{ratio_family(ratio)}.mp4")) + FREE_BOX_HEADER + len(marker(task_id))


def video_parts(
    task_id: str, ratio: str, output_bytes: int | None, seconds: float = CLIP_SECONDS
) -> tuple[bytes, int]:
    """(leading bytes, number of zero bytes after them) of the task's mp4.

    A trailing `free` box keeps the file a valid mp4 (players skip it) while it carries
    the task id, so every task's video is distinct, and the zero padding that brings it
    to `output_bytes` exactly. Only the small prefix ever lives in memory.
    """
    video = clip(ratio, seconds)
    tag = marker(task_id)
    natural = len(video) + FREE_BOX_HEADER + len(tag)
    total = natural if output_bytes is None else output_bytes
    if total < natural:
        raise ValueError(f"output_bytes={output_bytes} is below this video's natural size {natural}")
    box_size = total - len(video)
    if box_size <= MAX_SMALL_BOX:
        header = struct.pack(">I4s", box_size, b"free")
    else:
        header = struct.pack(">I4sQ", 1, b"free", box_size)
    zeros = box_size - len(header) - len(tag)
    if zeros < 0:  # only possible right at the 4 GiB switch to the large header
        raise ValueError(f"output_bytes={output_bytes} cannot be reached exactly; add 8 bytes")
    return video + header + tag, zeros


def last_frame_png(task_id: str, ratio: str) -> bytes:
    """The clip's last frame, with a tEXt chunk naming the task inserted before IEND."""
    png = _asset(f"last_frame_{ratio_family(ratio)}.png")
    iend = png.rindex(b"IEND") - 4  # back to the chunk's length field
    data = b"Comment\x00" + marker(task_id)
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data))
    return png[:iend] + chunk + png[iend:]
