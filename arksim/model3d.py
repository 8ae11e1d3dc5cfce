"""3D outputs in pure Python: an icosphere as glb, obj(+mtl), usda and usdz, zipped like Seed3D does.

The sphere's detail follows `subdivisionlevel` and its colour the task id, so models
differ per task but are reproducible (the sha256 of a task's zip is stable).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import struct
import sys
import zipfile
from array import array
from colorsys import hsv_to_rgb
from dataclasses import dataclass
from functools import lru_cache

SUBDIVISIONS = {"low": 2, "medium": 3, "high": 4}  # 320 / 1280 / 5120 faces
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed, so the bytes are the same every time
USDZ_ALIGNMENT = 64
USDZ_PAD_HEADER_ID = 0x1986  # the extra-field id Pixar's usdz writer pads with

GL_FLOAT, GL_UNSIGNED_SHORT, GL_UNSIGNED_INT = 5126, 5123, 5125
GL_ARRAY_BUFFER, GL_ELEMENT_ARRAY_BUFFER = 34962, 34963


@dataclass(frozen=True)
class Mesh:
    vertices: tuple[tuple[float, float, float], ...]  # unit sphere: also the normals
    faces: tuple[tuple[int, int, int], ...]


@lru_cache(maxsize=8)
def icosphere(subdivisions: int) -> Mesh:
    t = (1 + math.sqrt(5)) / 2
    raw = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t),
           (0, -1, -t), (0, 1, -t), (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]  # fmt: skip
    vertices = [_unit(v) for v in raw]
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4),
             (11, 10, 2), (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8),
             (3, 8, 9), (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1)]  # fmt: skip
    for _ in range(subdivisions):
        midpoints: dict[tuple[int, int], int] = {}  # shared edges get one new vertex
        refined = []
        for a, b, c in faces:
            ab, bc, ca = (_midpoint(vertices, midpoints, x, y) for x, y in ((a, b), (b, c), (c, a)))
            refined += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = refined
    return Mesh(tuple(vertices), tuple(faces))


def _midpoint(vertices: list, midpoints: dict[tuple[int, int], int], a: int, b: int) -> int:
    key = (min(a, b), max(a, b))
    if key not in midpoints:
        va, vb = vertices[a], vertices[b]
        vertices.append(_unit(((va[0] + vb[0]) / 2, (va[1] + vb[1]) / 2, (va[2] + vb[2]) / 2)))
        midpoints[key] = len(vertices) - 1
    return midpoints[key]


def _unit(v: tuple[float, float, float]) -> tuple[float, float, float]:
    length = math.sqrt(v[0] ** 2 + v[1] ** 2 + v[2] ** 2)
    return (v[0] / length, v[1] / length, v[2] / length)


def task_colour(task_id: str) -> tuple[float, float, float]:
    hue = hashlib.sha256(task_id.encode()).digest()[0] / 255
    return hsv_to_rgb(hue, 0.6, 0.9)


def _le(values: array) -> bytes:
    if sys.byteorder == "big":  # glTF buffers are little-endian
        values = array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


def _pad4(data: bytes, filler: bytes) -> bytes:
    return data + filler * (-len(data) % 4)


def glb(mesh: Mesh, colour: tuple[float, float, float], name: str) -> bytes:
    """glTF 2.0 binary: positions, normals, indices and one PBR material."""
    flat = array("f", [c for v in mesh.vertices for c in v])
    positions = _le(flat)
    normals = positions  # a unit sphere's normal is its position
    index_type = GL_UNSIGNED_SHORT if len(mesh.vertices) < 65536 else GL_UNSIGNED_INT
    indices = _le(array("H" if index_type == GL_UNSIGNED_SHORT else "I", [i for f in mesh.faces for i in f]))
    binary = _pad4(positions + normals + _pad4(indices, b"\0"), b"\0")
    count = len(mesh.vertices)
    document = {
        "asset": {"version": "2.0", "generator": "arksim"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": name}],
        "meshes": [{"name": name, "primitives": [
            {"attributes": {"POSITION": 0, "NORMAL": 1}, "indices": 2, "material": 0, "mode": 4}
        ]}],
        "materials": [{"name": "arksim", "pbrMetallicRoughness": {
            "baseColorFactor": [*colour, 1.0], "metallicFactor": 0.1, "roughnessFactor": 0.6
        }}],
        "buffers": [{"byteLength": len(binary)}],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": len(positions), "target": GL_ARRAY_BUFFER},
            {"buffer": 0, "byteOffset": len(positions), "byteLength": len(normals), "target": GL_ARRAY_BUFFER},
            {"buffer": 0, "byteOffset": 2 * len(positions), "byteLength": len(indices),
             "target": GL_ELEMENT_ARRAY_BUFFER},
        ],
        "accessors": [
            {"bufferView": 0, "componentType": GL_FLOAT, "count": count, "type": "VEC3",
             "min": [min(v[i] for v in mesh.vertices) for i in range(3)],
             "max": [max(v[i] for v in mesh.vertices) for i in range(3)]},
            {"bufferView": 1, "componentType": GL_FLOAT, "count": count, "type": "VEC3"},
            {"bufferView": 2, "componentType": index_type, "count": 3 * len(mesh.faces), "type": "SCALAR"},
        ],
    }  # fmt: skip
    json_chunk = _pad4(json.dumps(document, separators=(",", ":")).encode(), b" ")
    total = 12 + 8 + len(json_chunk) + 8 + len(binary)
    return b"".join([
        struct.pack("<4sII", b"glTF", 2, total),
        struct.pack("<I4s", len(json_chunk), b"JSON"), json_chunk,
        struct.pack("<I4s", len(binary), b"BIN\0"), binary,
    ])  # fmt: skip


def obj(mesh: Mesh, colour: tuple[float, float, float], name: str) -> tuple[str, str]:
    """(model.obj, model.mtl) as Wavefront text."""
    lines = ["# arksim", "mtllib model.mtl", f"o {name}"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in mesh.vertices]
    lines += [f"vn {x:.6f} {y:.6f} {z:.6f}" for x, y, z in mesh.vertices]
    lines.append("usemtl arksim")
    lines += [f"f {a + 1}//{a + 1} {b + 1}//{b + 1} {c + 1}//{c + 1}" for a, b, c in mesh.faces]
    r, g, b = colour
    mtl = f"newmtl arksim\nKd {r:.4f} {g:.4f} {b:.4f}\nKa 0 0 0\nKs 0.1 0.1 0.1\nNs 20\nillum 2\n"
    return "\n".join(lines) + "\n", mtl


def usda(mesh: Mesh, colour: tuple[float, float, float]) -> str:
    points = ", ".join(f"({x:.6f}, {y:.6f}, {z:.6f})" for x, y, z in mesh.vertices)
    indices = ", ".join(str(i) for face in mesh.faces for i in face)
    counts = ", ".join("3" for _ in mesh.faces)
    r, g, b = colour
    return f"""#usda 1.0
(
    defaultPrim = "Model"
    metersPerUnit = 1
    upAxis = "Y"
)

def Xform "Model" (
    kind = "component"
)
{{
    def Mesh "Sphere"
    {{
        float3[] extent = [(-1, -1, -1), (1, 1, 1)]
        int[] faceVertexCounts = [{counts}]
        int[] faceVertexIndices = [{indices}]
        point3f[] points = [{points}]
        normal3f[] normals = [{points}] (
            interpolation = "vertex"
        )
        color3f[] primvars:displayColor = [({r:.4f}, {g:.4f}, {b:.4f})]
        uniform token subdivisionScheme = "none"
    }}
}}
"""


def usdz(files: dict[str, bytes]) -> bytes:
    """An uncompressed zip whose every file's data starts on a 64-byte boundary (the usdz rule)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, ZIP_DATE)
            data_start = buffer.tell() + 30 + len(name.encode()) + 4  # local header + pad field header
            padding = -data_start % USDZ_ALIGNMENT
            info.extra = struct.pack("<HH", USDZ_PAD_HEADER_ID, padding) + b"\0" * padding
            archive.writestr(info, data)
    return buffer.getvalue()


@lru_cache(maxsize=64)
def model_zip(task_id: str, fileformat: str, subdivisionlevel: str) -> bytes:
    """The `file_url` download: a zip holding the model in the requested format."""
    mesh = icosphere(SUBDIVISIONS.get(subdivisionlevel, 3))
    colour = task_colour(task_id)
    if fileformat == "glb":
        files = {"model.glb": glb(mesh, colour, task_id)}
    elif fileformat == "obj":
        obj_text, mtl_text = obj(mesh, colour, task_id)
        files = {"model.obj": obj_text.encode(), "model.mtl": mtl_text.encode()}
    elif fileformat == "usd":
        files = {"model.usd": usda(mesh, colour).encode()}
    elif fileformat == "usdz":
        files = {"model.usdz": usdz({"model.usda": usda(mesh, colour).encode()})}
    else:
        raise ValueError(f"unknown fileformat {fileformat!r}")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED if name.endswith(".usdz") else zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()
