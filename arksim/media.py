"""Video and last-frame outputs: real mp4/png assets, made unique per task and padded on demand."""

from __future__ import annotations

import struct
import zlib
from functools import cache
from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"
FREE_BOX_HEADER = 8
FREE_BOX_LARGE_HEADER = 16  # size=1 then a 64-bit size: boxes of 4 GiB and more
MAX_SMALL_BOX = 0xFFFFFFFF


def ratio_family(ratio: str) -> str:
    """Which shipped clip stands for a requested aspect ratio."""
    if ratio in ("9:16", "3:4"):
        return "9x16"
    if ratio == "1:1":
        return "1x1"
    return "16x9"


@cache
def _asset(name: str) -> bytes:
    return (ASSETS / name).read_bytes()


def marker(task_id: str) -> bytes:
    return f"arksim task {task_id}".encode()


def video_min_size(ratio: str, task_id: str) -> int:
    return len(_asset(f"video_{ratio_family(ratio)}.mp4")) + FREE_BOX_HEADER + len(marker(task_id))


def video_parts(task_id: str, ratio: str, output_bytes: int | None) -> tuple[bytes, int]:
    """(leading bytes, number of zero bytes after them) of the task's mp4.

    A trailing `free` box keeps the file a valid mp4 (players skip it) while it carries
    the task id, so every task's video is distinct, and the zero padding that brings it
    to `output_bytes` exactly. Only the small prefix ever lives in memory.
    """
    clip = _asset(f"video_{ratio_family(ratio)}.mp4")
    tag = marker(task_id)
    natural = len(clip) + FREE_BOX_HEADER + len(tag)
    total = natural if output_bytes is None else output_bytes
    if total < natural:
        raise ValueError(f"output_bytes={output_bytes} is below this video's natural size {natural}")
    box_size = total - len(clip)
    if box_size <= MAX_SMALL_BOX:
        header = struct.pack(">I4s", box_size, b"free")
    else:
        header = struct.pack(">I4sQ", 1, b"free", box_size)
    zeros = box_size - len(header) - len(tag)
    if zeros < 0:  # only possible right at the 4 GiB switch to the large header
        raise ValueError(f"output_bytes={output_bytes} cannot be reached exactly; add 8 bytes")
    return clip + header + tag, zeros


def last_frame_png(task_id: str, ratio: str) -> bytes:
    """The clip's last frame, with a tEXt chunk naming the task inserted before IEND."""
    png = _asset(f"last_frame_{ratio_family(ratio)}.png")
    iend = png.rindex(b"IEND") - 4  # back to the chunk's length field
    data = b"Comment\x00" + marker(task_id)
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data))
    return png[:iend] + chunk + png[iend:]
