"""arksim: 3D outputs are zips holding a valid model in the requested format."""

from __future__ import annotations

import hashlib
import io
import json
import re
import struct
import zipfile
from array import array

import httpx
import pytest

from arksim import SimClock, Simulator

from .support import START

EXPECTED_FACES = {"low": 320, "medium": 1280, "high": 5120}


@pytest.fixture
def ark() -> Simulator:
    return Simulator(clock=SimClock(START))


def _model_zip(ark: Simulator, fileformat: str, level: str = "medium") -> tuple[str, zipfile.ZipFile, bytes]:
    task_id = ark.add_task(kind="3d", status="succeeded", file_format=fileformat, subdivisionlevel=level)
    url = ark.task_json(task_id)["content"]["file_url"]
    with httpx.Client(transport=ark.transport()) as client:
        response = client.get(url)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None
    return task_id, archive, response.content


def _parse_glb(data: bytes) -> tuple[dict, bytes]:
    magic, version, length = struct.unpack("<4sII", data[:12])
    assert (magic, version, length) == (b"glTF", 2, len(data))
    json_length, json_type = struct.unpack("<I4s", data[12:20])
    assert json_type == b"JSON" and json_length % 4 == 0
    document = json.loads(data[20 : 20 + json_length])
    bin_at = 20 + json_length
    bin_length, bin_type = struct.unpack("<I4s", data[bin_at : bin_at + 8])
    assert bin_type == b"BIN\0" and bin_at + 8 + bin_length == len(data)
    return document, data[bin_at + 8 :]


@pytest.mark.parametrize("level", ["low", "medium", "high"])
def test_it_makes_a_valid_glb_whose_accessors_match_its_buffer(ark: Simulator, level: str) -> None:
    _, archive, _ = _model_zip(ark, "glb", level)
    assert archive.namelist() == ["model.glb"]
    document, binary = _parse_glb(archive.read("model.glb"))
    assert document["asset"]["version"] == "2.0"
    assert document["buffers"][0]["byteLength"] == len(binary)
    sizes = {5126: 4, 5123: 2, 5125: 4}
    widths = {"VEC3": 3, "SCALAR": 1}
    for accessor in document["accessors"]:
        view = document["bufferViews"][accessor["bufferView"]]
        assert view["byteOffset"] % sizes[accessor["componentType"]] == 0
        assert view["byteOffset"] + view["byteLength"] <= len(binary)
        assert (
            accessor["count"] * widths[accessor["type"]] * sizes[accessor["componentType"]]
            == view["byteLength"]
        )
    primitive = document["meshes"][0]["primitives"][0]
    position = document["accessors"][primitive["attributes"]["POSITION"]]
    assert len(position["min"]) == len(position["max"]) == 3
    indices_accessor = document["accessors"][primitive["indices"]]
    view = document["bufferViews"][indices_accessor["bufferView"]]
    indices = array("H" if indices_accessor["componentType"] == 5123 else "I")
    indices.frombytes(binary[view["byteOffset"] : view["byteOffset"] + view["byteLength"]])
    assert len(indices) == 3 * EXPECTED_FACES[level]
    assert max(indices) < position["count"]


def test_it_makes_an_obj_with_its_material(ark: Simulator) -> None:
    _, archive, _ = _model_zip(ark, "obj", "low")
    assert sorted(archive.namelist()) == ["model.mtl", "model.obj"]
    text = archive.read("model.obj").decode()
    vertices = len(re.findall(r"^v ", text, re.M))
    faces = re.findall(r"^f (\d+)//\d+ (\d+)//\d+ (\d+)//\d+$", text, re.M)
    assert "mtllib model.mtl" in text and "newmtl arksim" in archive.read("model.mtl").decode()
    assert len(faces) == EXPECTED_FACES["low"]
    assert all(1 <= int(i) <= vertices for face in faces for i in face)


def test_it_makes_a_usd_text_layer(ark: Simulator) -> None:
    _, archive, _ = _model_zip(ark, "usd", "low")
    text = archive.read("model.usd").decode()
    assert text.startswith("#usda 1.0")
    assert 'def Mesh "Sphere"' in text and "faceVertexIndices" in text


def test_it_makes_a_usdz_that_is_stored_and_64_byte_aligned(ark: Simulator) -> None:
    _, archive, _ = _model_zip(ark, "usdz", "low")
    usdz_bytes = archive.read("model.usdz")
    usdz = zipfile.ZipFile(io.BytesIO(usdz_bytes))
    first = usdz.infolist()[0]
    assert first.filename.endswith(".usda")
    for info in usdz.infolist():
        assert info.compress_type == zipfile.ZIP_STORED
        name_length, extra_length = struct.unpack(
            "<HH", usdz_bytes[info.header_offset + 26 : info.header_offset + 30]
        )
        data_offset = info.header_offset + 30 + name_length + extra_length
        assert data_offset % 64 == 0
        assert usdz_bytes[data_offset : data_offset + 10] == b"#usda 1.0\n"


def test_it_makes_models_that_differ_per_task_and_hash_as_announced(ark: Simulator) -> None:
    first, _, first_bytes = _model_zip(ark, "glb")
    second, _, second_bytes = _model_zip(ark, "glb")
    assert first_bytes != second_bytes
    assert hashlib.sha256(first_bytes).hexdigest() == ark.output_sha256(first, "model_zip")
    assert hashlib.sha256(second_bytes).hexdigest() == ark.output_sha256(second, "model_zip")
