"""arksim: output URLs serve real mp4/png files, honour Range and HEAD, die after 24 h, stream big files."""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from arksim import SimClock, Simulator
from arksim.media import mp4_info, video_parts

from .support import DAY, KEY, START

MiB = 1 << 20


@pytest.fixture
def http(ark: Simulator) -> Iterator[httpx.Client]:
    with httpx.Client(transport=ark.transport()) as client:
        yield client


def _boxes(data: bytes) -> list[tuple[str, int, int]]:
    """Top-level ISO-BMFF boxes as (type, offset, size); fails unless they tile the file exactly."""
    boxes, pos = [], 0
    while pos < len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
        assert size >= 8 and pos + size <= len(data), f"box {kind!r} at {pos} overruns the file"
        boxes.append((kind.decode("latin-1"), pos, size))
        pos += size
    assert pos == len(data)
    return boxes


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body), f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        pos += 12 + length
    return chunks


def test_it_serves_a_real_h264_mp4_unique_to_the_task(
    ark: Simulator, http: httpx.Client, tmp_path: Path
) -> None:
    first, second = ark.add_task(status="succeeded"), ark.add_task(status="succeeded")
    response = http.get(ark.output_url(first, "video"))
    data = response.content
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "video/mp4"
    assert int(response.headers["Content-Length"]) == len(data)
    boxes = _boxes(data)
    assert boxes[0][0] == "ftyp" and {"moov", "mdat"} <= {kind for kind, _, _ in boxes}
    moov = next(data[o : o + s] for kind, o, s in boxes if kind == "moov")
    assert b"avc1" in moov  # H.264 sample entry
    kind, offset, size = boxes[-1]
    assert kind == "free" and first.encode() in data[offset : offset + size]
    assert hashlib.sha256(data).hexdigest() == ark.output_sha256(first, "video")
    assert ark.output_sha256(first, "video") != ark.output_sha256(second, "video")
    if shutil.which("ffprobe"):  # a second opinion where the tool exists; the box walk above always runs
        (tmp_path / "v.mp4").write_bytes(data)
        probe = subprocess.run(
            ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=codec_name",
             "-of", "csv=p=0", str(tmp_path / "v.mp4")],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert probe.stdout.strip() == "h264", probe.stderr


RATIO_SIZES = [
    ("16:9", (480, 270)), ("9:16", (270, 480)), ("1:1", (360, 360)),
    ("4:3", (360, 270)), ("3:4", (270, 360)), ("21:9", (504, 216)),
]  # fmt: skip


@pytest.mark.parametrize(("ratio", "size"), RATIO_SIZES)
@pytest.mark.parametrize(("options", "seconds"), [({"duration": 5}, 5.0), ({"duration": 12}, 12.0),
                                                   ({"frames": 121}, 121 / 24)])  # fmt: skip
def test_it_serves_a_video_in_the_tasks_ratio_lasting_about_its_duration(
    ark: Simulator, http: httpx.Client, ratio: str, size: tuple[int, int], options: dict, seconds: float
) -> None:
    task_id = ark.add_task(status="succeeded", ratio=ratio, **options)
    data = http.get(ark.output_url(task_id, "video")).content
    width, height, duration = mp4_info(data)
    assert (width, height) == size
    assert abs(duration - seconds) < 0.1
    assert len(data) < 64 * 1024  # small, whatever the duration
    assert _boxes(data)[-1][0] == "free"


@pytest.mark.parametrize(("ratio", "size"), RATIO_SIZES)
def test_it_serves_a_png_last_frame_in_the_tasks_ratio(
    ark: Simulator, http: httpx.Client, ratio: str, size: tuple[int, int]
) -> None:
    task_id = ark.add_task(status="succeeded", ratio=ratio, return_last_frame=True)
    response = http.get(ark.output_url(task_id, "last_frame"))
    assert response.headers["Content-Type"] == "image/png"
    chunks = _png_chunks(response.content)
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    assert struct.unpack(">II", chunks[0][1][:8]) == size
    assert any(kind == b"tEXt" and task_id.encode() in body for kind, body in chunks)
    assert hashlib.sha256(response.content).hexdigest() == ark.output_sha256(task_id, "last_frame")


def test_it_honours_range_requests(ark: Simulator, http: httpx.Client) -> None:
    task_id = ark.add_task(status="succeeded")
    url = ark.output_url(task_id, "video")
    full = http.get(url).content
    size = len(full)
    cases = {"bytes=0-99": (0, 100), "bytes=1000-": (1000, size), "bytes=-10": (size - 10, size)}
    for header, (start, end) in cases.items():
        response = http.get(url, headers={"Range": header})
        assert response.status_code == 206, header
        assert response.headers["Content-Range"] == f"bytes {start}-{end - 1}/{size}"
        assert response.content == full[start:end]
        assert int(response.headers["Content-Length"]) == end - start
    unsatisfiable = http.get(url, headers={"Range": f"bytes={size}-"})
    assert unsatisfiable.status_code == 416
    assert unsatisfiable.headers["Content-Range"] == f"bytes */{size}"


def test_it_answers_head_with_the_length_and_no_body(ark: Simulator, http: httpx.Client) -> None:
    task_id = ark.add_task(status="succeeded")
    response = http.head(ark.output_url(task_id, "video"))
    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) == ark.output_size(task_id, "video")
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.content == b""


def test_it_stops_serving_outputs_24_hours_after_success(ark: Simulator, http: httpx.Client) -> None:
    task_id = ark.add_task(status="queued")
    ark.advance(25)  # succeeded at START + 25
    url = ark.task_json(task_id)["content"]["video_url"]
    ark.advance(DAY - 1)
    assert http.get(url).status_code == 200
    ark.advance(1)
    response = http.get(url)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "AccessDenied"
    assert "expired" in response.json()["error"]["message"]


def test_it_refuses_urls_whose_signature_or_expiry_was_tampered_with(
    ark: Simulator, http: httpx.Client
) -> None:
    url = ark.output_url(ark.add_task(status="succeeded"), "video")
    base, query = url.split("?")
    expires = int(query.split("&")[0].split("=")[1])
    tampered = [
        url[:-1] + ("0" if url[-1] != "0" else "1"),
        base,
        url.replace(f"expires={expires}", f"expires={expires + DAY}"),
    ]
    for bad in tampered:
        response = http.get(bad)
        assert response.status_code == 403, bad
        assert response.json()["error"]["code"] == "SignatureDoesNotMatch"


def test_it_answers_404_for_outputs_that_do_not_exist(ark: Simulator, http: httpx.Client) -> None:
    no_frame = ark.add_task(status="succeeded", return_last_frame=False)
    frame_url = ark.output_url(no_frame, "video").replace("video.mp4", "last_frame.png")
    assert http.get(frame_url).status_code == 404
    assert http.get("http://arksim.test/_outputs/cgt-20250101000000-zzzzz/video.mp4").status_code == 404
    assert "last_frame_url" not in ark.task_json(no_frame)["content"]


def test_it_keeps_serving_outputs_after_the_record_is_deleted(ark: Simulator, http: httpx.Client) -> None:
    task_id = ark.add_task(status="succeeded")
    url = ark.output_url(task_id, "video")
    with httpx.Client(transport=ark.transport(), headers={"Authorization": f"Bearer {KEY}"}) as api:
        assert (
            api.delete(f"http://arksim.test/api/v3/contents/generations/tasks/{task_id}").status_code == 200
        )
    assert http.get(url).status_code == 200


def test_it_pads_a_video_to_exactly_output_bytes_and_keeps_it_a_valid_mp4(
    ark: Simulator, http: httpx.Client
) -> None:
    task_id = ark.add_task(status="succeeded", output_bytes=3 * MiB + 7)
    response = http.get(ark.output_url(task_id, "video"))
    assert len(response.content) == 3 * MiB + 7
    kind, offset, size = _boxes(response.content)[-1]
    assert kind == "free" and offset + size == 3 * MiB + 7
    assert hashlib.sha256(response.content).hexdigest() == ark.output_sha256(task_id, "video")


def test_it_uses_a_64_bit_free_box_beyond_4_gib() -> None:
    head, zeros = video_parts("cgt-20250101000000-abcde", "16:9", 5 << 30)
    clip_size = len(head) - 16 - len(b"arksim task cgt-20250101000000-abcde")
    size_field, kind, large_size = struct.unpack(">I4sQ", head[clip_size : clip_size + 16])
    assert (size_field, kind) == (1, b"free")
    assert clip_size + large_size == len(head) + zeros == 5 << 30


def test_it_refuses_output_bytes_below_the_natural_size() -> None:
    with pytest.raises(ValueError, match="output_bytes"):
        Simulator(output_bytes=1000)
    with pytest.raises(ValueError, match="output_bytes"):
        Simulator().add_task(status="succeeded", output_bytes=1000)


def test_it_streams_a_200_mb_output_with_flat_memory() -> None:
    ark = Simulator(api_keys=(KEY,), clock=SimClock(START), output_bytes=200 * MiB)
    task_id = ark.add_task(status="succeeded")
    expected = ark.output_sha256(task_id, "video")
    digest, received = hashlib.sha256(), 0
    tracemalloc.start()
    try:
        with httpx.Client(transport=ark.transport()) as client:
            with client.stream("GET", ark.output_url(task_id, "video")) as response:
                assert int(response.headers["Content-Length"]) == 200 * MiB
                for chunk in response.iter_raw():
                    digest.update(chunk)
                    received += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == 200 * MiB
    assert digest.hexdigest() == expected
    assert peak < 20 * MiB, f"peak {peak / MiB:.1f} MiB"


def test_it_serves_a_range_deep_inside_the_padding_without_reading_up_to_it() -> None:
    ark = Simulator(api_keys=(KEY,), clock=SimClock(START), output_bytes=2 << 30)
    task_id = ark.add_task(status="succeeded")
    with httpx.Client(transport=ark.transport()) as client:
        response = client.get(
            ark.output_url(task_id, "video"), headers={"Range": "bytes=2000000000-2000000099"}
        )
    assert response.status_code == 206
    assert response.content == bytes(100)
    assert response.headers["Content-Range"] == f"bytes 2000000000-2000000099/{2 << 30}"
