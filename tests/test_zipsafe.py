from __future__ import annotations

import hashlib
import io
import stat
import zipfile

import pytest

from tasks_app.lib.zipsafe import ZipError, ZipLimits, extract_model, unsafe_name_reason, verify_zip

GLB = b"glTF" + bytes(range(256)) * 40


def make_zip(members: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def extract(data: bytes, *, file_format: str = "glb", **kwargs) -> tuple[bytes, object]:
    out = io.BytesIO()
    member = extract_model(io.BytesIO(data), file_format=file_format, write=out.write, **kwargs)
    return out.getvalue(), member


def test_it_accepts_a_sound_zip_and_lists_its_members():
    data = make_zip({"model.glb": GLB, "textures/albedo.png": b"png"})

    assert verify_zip(io.BytesIO(data)) == ["model.glb", "textures/albedo.png"]


def test_it_refuses_a_zip_whose_member_crc_does_not_match():
    data = bytearray(make_zip({"model.glb": GLB}, compression=zipfile.ZIP_STORED))
    offset = data.index(b"glTF") + 10
    data[offset] ^= 0xFF  # flip one byte of the stored payload

    with pytest.raises(ZipError, match="corrupt"):
        verify_zip(io.BytesIO(bytes(data)))


def test_it_refuses_a_truncated_zip():
    data = make_zip({"model.glb": GLB})

    with pytest.raises(ZipError, match="not a valid zip"):
        verify_zip(io.BytesIO(data[: len(data) // 2]))


def test_it_refuses_a_zip_bomb_by_its_ratio_without_inflating_it():
    data = make_zip({"model.glb": b"\0" * (20 * 1024 * 1024)})

    with pytest.raises(ZipError, match="compression ratio"):
        verify_zip(io.BytesIO(data), limits=ZipLimits(max_ratio=100))


def test_it_refuses_a_zip_that_inflates_beyond_the_total_limit():
    data = make_zip({"a.glb": GLB, "b.glb": GLB})

    with pytest.raises(ZipError, match="inflate to more than"):
        verify_zip(io.BytesIO(data), limits=ZipLimits(max_total_bytes=len(GLB) + 10))


def test_it_refuses_too_many_members():
    data = make_zip({f"f{i}.txt": b"x" for i in range(20)})

    with pytest.raises(ZipError, match="20 members"):
        verify_zip(io.BytesIO(data), limits=ZipLimits(max_members=10))


def test_it_extracts_the_model_of_the_requested_format_with_its_hash():
    data = make_zip({"readme.txt": b"hi", "scene.obj": b"v 0 0 0\n", "model.glb": GLB})

    body, member = extract(data, file_format="glb")

    assert body == GLB
    assert member.name == "model.glb"
    assert member.size == len(GLB)
    assert member.sha256 == hashlib.sha256(GLB).hexdigest()


def test_it_falls_back_to_any_model_type_when_the_format_is_unknown():
    data = make_zip({"readme.txt": b"hi", "scene.obj": b"v 0 0 0\n"})

    body, member = extract(data, file_format="")

    assert member.name == "scene.obj"
    assert body == b"v 0 0 0\n"


def test_it_refuses_a_zip_without_the_requested_format():
    data = make_zip({"scene.obj": b"v 0 0 0\n"})

    with pytest.raises(ZipError, match="no .glb file"):
        extract(data, file_format="glb")


def test_it_refuses_a_zip_without_a_model_file():
    data = make_zip({"run.sh": b"rm -rf /", "notes.txt": b"x"})

    with pytest.raises(ZipError, match="no model file"):
        extract(data, file_format="")


@pytest.mark.parametrize(
    "name", ["../evil.glb", "/etc/evil.glb", "a/../../evil.glb", "C:/evil.glb", "a\\evil.glb"]
)
def test_it_refuses_to_extract_a_member_with_a_traversal_name(name):
    data = make_zip({name: GLB})

    with pytest.raises(ZipError, match="refused zip member"):
        extract(data)


def test_it_refuses_to_extract_a_symlink():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("model.glb")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, "/etc/passwd")

    with pytest.raises(ZipError, match="not a regular file"):
        extract(buffer.getvalue())


def test_it_refuses_a_model_larger_than_the_member_cap():
    data = make_zip({"model.glb": GLB})

    with pytest.raises(ZipError, match="more than the limit"):
        extract(data, max_member_bytes=100)


@pytest.mark.parametrize("name", ["a/b/model.glb", "./model.glb", "model..glb"])
def test_it_considers_ordinary_nested_names_safe(name):
    assert unsafe_name_reason(name) is None
