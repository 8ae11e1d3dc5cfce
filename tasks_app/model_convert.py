"""Turning an archived obj or USD model into a glb, the one format the page's 3D viewer reads.

Done once, when the model is archived (the preview is stored beside the zip); the zip
itself stays what downloads. obj goes through trimesh; USD (usd, usda, usdc, usdz)
through Pixar's own library (usd-core), whose meshes trimesh then writes as glb.
"""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from .lib import zipsafe

CONVERTIBLE = frozenset({"obj", "usd", "usda", "usdc", "usdz"})


class ConversionError(Exception):
    """The model could not be turned into a glb; the message says why, for the page."""


def zip_to_glb(zip_path: Path, *, file_format: str, workdir: Path, limits: zipsafe.ZipLimits) -> bytes:
    """Unpack the task's zip (checked by zipsafe) into `workdir` and convert its model to glb.

    Raises zipsafe.ZipError for an unsafe or corrupt zip, ConversionError for a model
    the libraries cannot read.
    """
    names = zipsafe.verify_zip(str(zip_path), limits=limits)  # sizes, ratio, CRCs
    member = zipsafe.find_model_member(names, file_format=file_format)
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            reason = zipsafe.unsafe_name_reason(info.filename)
            if reason or zipsafe.is_symlink(info):
                raise zipsafe.ZipError(f"refused zip member {info.filename!r}: {reason or 'a link'}")
            # Side files too (an obj's .mtl): the converter reads them from beside the model.
            target = workdir.joinpath(*PurePosixPath(info.filename).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(info))
    return to_glb(workdir.joinpath(*PurePosixPath(member).parts))


def to_glb(path: Path) -> bytes:
    extension = path.suffix.lower().lstrip(".")
    if extension not in CONVERTIBLE:
        raise ConversionError(f"no converter for .{extension} files")
    try:
        scene = _load_obj(path) if extension == "obj" else _load_usd(path)
        data = scene.export(file_type="glb")
    except ConversionError:
        raise
    except Exception as exc:  # noqa: BLE001 - both libraries raise many types for a bad file
        raise ConversionError(f"could not convert the .{extension} model ({type(exc).__name__}: {exc})") from None
    if not data:
        raise ConversionError(f"the .{extension} model holds no geometry")
    return data


def _load_obj(path: Path) -> Any:
    import trimesh

    scene = trimesh.load(str(path), file_type="obj", force="scene")
    if not scene.geometry:
        raise ConversionError("the .obj model holds no geometry")
    return scene


def _load_usd(path: Path) -> Any:
    import numpy as np
    import trimesh
    from pxr import Usd, UsdGeom

    stage = Usd.Stage.Open(str(path))
    if stage is None:
        raise ConversionError("the USD file could not be opened")
    up_is_z = UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.z
    scene = trimesh.Scene()
    for prim in stage.Traverse():
        if not prim.IsA(UsdGeom.Mesh):
            continue
        mesh = UsdGeom.Mesh(prim)
        points = np.array(mesh.GetPointsAttr().Get() or [], dtype=float)
        counts = list(mesh.GetFaceVertexCountsAttr().Get() or [])
        indices = list(mesh.GetFaceVertexIndicesAttr().Get() or [])
        if not len(points) or not counts:
            continue
        faces, start = [], 0
        for count in counts:  # polygons as triangle fans
            polygon = indices[start : start + count]
            faces += [(polygon[0], polygon[i], polygon[i + 1]) for i in range(1, count - 1)]
            start += count
        world = np.array(UsdGeom.Xformable(prim).ComputeLocalToWorldTransform(Usd.TimeCode.Default()))
        # USD matrices are row-major with the translation in the last row.
        points = points @ world[:3, :3] + world[3, :3]
        if up_is_z:
            points = points[:, [0, 2, 1]] * np.array([1, 1, -1])
        part = trimesh.Trimesh(vertices=points, faces=np.array(faces), process=False)
        colours = UsdGeom.PrimvarsAPI(prim).GetPrimvar("displayColor").Get() if prim.HasAttribute(
            "primvars:displayColor"
        ) else None
        if colours:
            r, g, b = colours[0]
            rgba = [round(r * 255), round(g * 255), round(b * 255), 255]
            part.visual = trimesh.visual.ColorVisuals(part, vertex_colors=np.tile(rgba, (len(points), 1)))
        scene.add_geometry(part, node_name=str(prim.GetPath()))
    if not scene.geometry:
        raise ConversionError("the USD file holds no mesh")
    return scene
