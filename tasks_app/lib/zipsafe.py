"""Checking a downloaded 3D zip, and taking the model file out of it without trusting it.

The zip comes from a URL we do not control. Before anything reads it in full, its
central directory is checked against limits (member count, declared uncompressed
size, compression ratio) so a zip bomb is refused without inflating it. zipfile
stops inflating a member at its declared size and checks the CRC, so the declared
sizes we checked are also the most that can come out. The extracted model never
takes its name from the zip: the caller chooses where it goes; member names are
still checked so an archive built to attack extraction is refused, not "repaired".
"""

from __future__ import annotations

import hashlib
import stat
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import BinaryIO

MODEL_EXTENSIONS = frozenset({"glb", "gltf", "obj", "usd", "usda", "usdc", "usdz"})
DEFAULT_MAX_MEMBERS = 1000
DEFAULT_MAX_TOTAL_BYTES = 2 * 1024**3
DEFAULT_MAX_RATIO = 200
CHUNK = 1024 * 1024


class ZipError(Exception):
    """The zip is corrupt or unsafe; the message says which and why, for the page.

    `final` marks what downloading the same URL again cannot change: a zip bomb, too
    many members, encryption, not a zip at all. A bad CRC may be a damaged transfer.
    """

    def __init__(self, message: str, *, final: bool = False) -> None:
        super().__init__(message)
        self.final = final


@dataclass(frozen=True)
class ZipLimits:
    max_members: int = DEFAULT_MAX_MEMBERS
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES
    max_ratio: float = DEFAULT_MAX_RATIO


@dataclass(frozen=True)
class ExtractedMember:
    name: str
    size: int
    sha256: str


def unsafe_name_reason(name: str) -> str | None:
    """Why a member name must not be extracted, or None when it is harmless."""
    if not name or "\x00" in name:
        return "empty or NUL in name"
    if "\\" in name:
        return "backslash in name"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if any(part == ".." for part in PurePosixPath(name).parts):
        return "'..' in path"
    return None


def is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _check_directory(archive: zipfile.ZipFile, limits: ZipLimits) -> list[zipfile.ZipInfo]:
    infos = archive.infolist()
    if len(infos) > limits.max_members:
        raise ZipError(f"zip has {len(infos)} members, more than the limit of {limits.max_members}", final=True)
    total = 0
    for info in infos:
        if info.flag_bits & 0x1:
            raise ZipError(f"zip member {info.filename!r} is encrypted", final=True)
        total += info.file_size
        if total > limits.max_total_bytes:
            raise ZipError(f"zip would inflate to more than {limits.max_total_bytes} bytes", final=True)
        if info.file_size > 0 and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise ZipError(
                f"zip member {info.filename!r} has a compression ratio above {limits.max_ratio:g} (zip bomb?)",
                final=True,
            )
    return infos


def _open(file: str | BinaryIO) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(file)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise ZipError(f"not a valid zip ({exc})", final=True) from None


def verify_zip(file: str | BinaryIO, *, limits: ZipLimits = ZipLimits()) -> list[str]:
    """Check every member's CRC (after the limits); return the member names."""
    with _open(file) as archive:
        infos = _check_directory(archive, limits)
        try:
            bad = archive.testzip()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError) as exc:
            raise ZipError(f"zip is corrupt ({exc})") from None
        if bad is not None:
            raise ZipError(f"zip member {bad!r} is corrupt (CRC mismatch)")
        return [info.filename for info in infos]


def find_model_member(names: list[str], *, file_format: str) -> str:
    """The member holding the model in the task's file format (any model type if it is unknown)."""
    wanted = (file_format or "").lower().lstrip(".")
    candidates = [n for n in names if not n.endswith("/") and PurePosixPath(n).suffix.lower().lstrip(".")]
    if wanted in MODEL_EXTENSIONS:
        preferred = [n for n in candidates if PurePosixPath(n).suffix.lower() == f".{wanted}"]
        if preferred:
            return preferred[0]
        # The preview is stored and served as .<wanted>: another type would be mislabelled.
        raise ZipError(f"zip holds no .{wanted} file")
    fallback = [n for n in candidates if PurePosixPath(n).suffix.lower().lstrip(".") in MODEL_EXTENSIONS]
    if fallback:
        return fallback[0]
    raise ZipError(f"zip holds no model file ({', '.join(sorted(MODEL_EXTENSIONS))})")


def extract_model(
    file: str | BinaryIO,
    *,
    file_format: str,
    write: Callable[[bytes], None],
    limits: ZipLimits = ZipLimits(),
    max_member_bytes: int | None = None,
) -> ExtractedMember:
    """Stream the model member into write(); refuse unsafe names, links, types, sizes."""
    with _open(file) as archive:
        infos = _check_directory(archive, limits)
        by_name = {info.filename: info for info in infos}
        name = find_model_member(list(by_name), file_format=file_format)
        info = by_name[name]
        reason = unsafe_name_reason(name)
        if reason:
            raise ZipError(f"refused zip member {name!r}: {reason}")
        if is_symlink(info) or info.is_dir():
            raise ZipError(f"refused zip member {name!r}: not a regular file")
        cap = max_member_bytes if max_member_bytes is not None else limits.max_total_bytes
        if info.file_size > cap:
            raise ZipError(f"model file {name!r} is {info.file_size} bytes, more than the limit of {cap}")
        digest = hashlib.sha256()
        size = 0
        try:
            with archive.open(info) as member:
                while chunk := member.read(CHUNK):
                    size += len(chunk)
                    if size > info.file_size:  # belt and braces: zipfile already stops here
                        raise ZipError(f"model file {name!r} inflates beyond its declared size")
                    digest.update(chunk)
                    write(chunk)
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
            raise ZipError(f"model file {name!r} is corrupt ({exc})") from None
        return ExtractedMember(name=name, size=size, sha256=digest.hexdigest())
