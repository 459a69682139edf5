"""Turning what people bring (files, folders, ZIP archives) into named images to classify.

Pure Python: no Streamlit, no TensorFlow, so the command line and the dashboard share it and
tests run it in milliseconds. Whatever is not used is named with a reason, never dropped silently.
Whether an image's bytes decode is judged later by :func:`hematovision.core.imaging.decode_image`.
"""

from __future__ import annotations

import io
import os
import re
import struct
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, NamedTuple

from hematovision.core.imaging import IMAGE_SUFFIXES

#: An archive that would decompress to more than this is a zip bomb or a mistake; images of
#: blood cells run to megabytes, and every member read is held in memory.
MAX_ZIP_TOTAL_BYTES = 2 * 1024**3
MAX_ZIP_MEMBERS = 10_000
#: Photographs barely compress (JPEG, PNG are compressed already), so a large member squeezed
#: more than this is almost certainly crafted to blow up.
MAX_COMPRESSION_RATIO = 100
RATIO_CHECKED_ABOVE_BYTES = 10 * 1024**2
#: Bounds the table of contents zipfile parses into objects before any member is looked at:
#: without it a small upload listing millions of entries would exhaust memory on its own.
MAX_DIRECTORY_BYTES_PER_MEMBER = 1024

ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".tbz2", ".xz", ".txz", ".zst", ".7z", ".rar", ".cab")

_END_RECORD = struct.Struct("<4s4H2LH")
_ZIP64_END_RECORD = struct.Struct("<4sQ2H2L4Q")
_ZIP64_LOCATOR_SIZE = 20
_ENCRYPTED_FLAG = 0x1
_MAC_METADATA = "__MACOSX/"

Source = bytes | Path


class ArchiveError(ValueError):
    """A ZIP that cannot be opened at all, with a message fit to show a user."""


class ZipContents(NamedTuple):
    """The usable images of an archive, in archive order, and every member not used, with why."""

    images: list[tuple[str, bytes]]
    skipped: list[tuple[str, str]]


@dataclass
class Expansion:
    """Named sources ready for ``Classifier.classify``, skipped items with reasons, and outright problems."""

    sources: list[tuple[str, Source]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def not_an_image_reason(suffix: str) -> str:
    return f"not an image type HematoVision reads ({suffix or 'no file extension'})"


def _is_hidden(part: str) -> bool:
    return part.startswith(".") and part not in (".", "..")


def scan_folder(folder: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files under ``folder`` (recursively, sorted) and every other entry with why it was skipped."""
    found: list[tuple[Path, str | None]] = []
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        kept = []
        for name in dirs:
            path = here / name
            if _is_hidden(name):
                found.append((path, "hidden folder (name starts with a dot), not searched"))
            elif path.is_symlink():
                # Links can loop back on a parent folder; the old rglob did not follow them either.
                found.append((path, "link to a folder, not followed"))
            else:
                kept.append(name)
        dirs[:] = kept
        for name in files:
            path = here / name
            suffix = path.suffix.lower()
            if _is_hidden(name):
                reason = "hidden file (name starts with a dot)"
            elif not path.is_file():
                reason = "not a regular file (a broken link, a device or a pipe)"
            elif suffix == ".zip":
                reason = "ZIP archive inside a folder, not opened: name the .zip itself to classify its images"
            elif suffix in ARCHIVE_SUFFIXES:
                reason = f"archive ({suffix}), not opened: HematoVision opens ZIP archives only"
            elif suffix not in IMAGE_SUFFIXES:
                reason = not_an_image_reason(suffix)
            else:
                reason = None
            found.append((path, reason))
    found.sort(key=lambda item: item[0])
    images = [path for path, reason in found if reason is None]
    skipped = [(str(path), reason) for path, reason in found if reason is not None]
    return images, skipped


def _declared_directory(handle: BinaryIO) -> tuple[int, int]:
    """The entry count and table-of-contents size the archive's end record declares."""
    handle.seek(0, io.SEEK_END)
    size = handle.tell()
    # The end record is the last thing in the file but for a comment of at most 64 KiB.
    tail_start = max(0, size - _END_RECORD.size - 0xFFFF)
    handle.seek(tail_start)
    tail = handle.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < _END_RECORD.size:
        raise ArchiveError("not a ZIP archive, or a damaged one (its table of contents cannot be found)")
    entries, directory_size = _END_RECORD.unpack_from(tail, at)[4:6]
    if entries == 0xFFFF or directory_size == 0xFFFFFFFF:
        record_at = tail_start + at - _ZIP64_LOCATOR_SIZE - _ZIP64_END_RECORD.size
        if record_at >= 0:
            handle.seek(record_at)
            record = handle.read(_ZIP64_END_RECORD.size)
            if len(record) == _ZIP64_END_RECORD.size and record.startswith(b"PK\x06\x06"):
                entries, directory_size = _ZIP64_END_RECORD.unpack(record)[7:9]
    return entries, directory_size


def _too_many_members(count: int) -> ArchiveError:
    return ArchiveError(
        f"the archive holds {count:,} entries; HematoVision opens archives of at most {MAX_ZIP_MEMBERS:,} "
        "(split it into smaller ones)"
    )


def _unsafe_name(name: str) -> bool:
    parts = re.split(r"[\\/]", name)
    return name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name) is not None or ".." in parts


def _skip_reason(info: zipfile.ZipInfo, budget_left: int) -> str | None:
    """Why a member is not read, judged on its name and declared sizes alone; None to read it."""
    name = info.filename
    parts = [part for part in re.split(r"[\\/]", name) if part]
    suffix = Path(parts[-1]).suffix.lower() if parts else ""
    if _unsafe_name(name):
        # Nothing is extracted, but such a name is a sign of a hostile archive, and as a label it misleads.
        return "unsafe path (absolute, or reaching outside the archive), not read"
    if any(_is_hidden(part) for part in parts):
        return "hidden file (name starts with a dot)"
    if suffix in ARCHIVE_SUFFIXES:
        return f"archive inside the archive ({suffix}), not opened"
    if suffix not in IMAGE_SUFFIXES:
        return not_an_image_reason(suffix)
    if info.flag_bits & _ENCRYPTED_FLAG:
        return "encrypted (password-protected), not read"
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > RATIO_CHECKED_ABOVE_BYTES and ratio > MAX_COMPRESSION_RATIO:
        return f"compressed {ratio:,.0f} times (over {MAX_COMPRESSION_RATIO}), refused as a likely zip bomb"
    if info.file_size > budget_left:
        return (
            f"declares {info.file_size / 1e6:,.1f} MB, past the limit of {MAX_ZIP_TOTAL_BYTES / 1e9:,.1f} GB "
            "uncompressed per archive; not read"
        )
    return None


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes | str:
    """The member's bytes, or why they cannot be had."""
    try:
        with archive.open(info) as stream:
            # One byte more than declared: a member that lies about its size is caught without reading the rest.
            data = stream.read(info.file_size + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        return f"damaged inside the archive ({exc}), not read"
    except NotImplementedError:
        return "compressed with a method HematoVision cannot read, not read"
    except RuntimeError as exc:
        return f"cannot be read ({exc})"
    if len(data) > info.file_size:
        return "holds more data than it declares, refused as a likely zip bomb"
    return data


def read_zip(source: bytes | str | Path) -> ZipContents:
    """The image members of a ZIP as (path inside the archive, bytes), in archive order, and what was skipped.

    Members are read into memory, never extracted. Folders are ignored; unsafe paths, nested
    archives, encrypted members, non-images and members that break the size limits are skipped
    with a reason. Raises :class:`ArchiveError` for a file that is not a readable ZIP or holds
    more than :data:`MAX_ZIP_MEMBERS` entries.
    """
    try:
        handle: BinaryIO = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115
    except OSError as exc:
        raise ArchiveError(f"cannot read the archive: {exc.strerror or exc}") from None
    with handle:
        entries, directory_size = _declared_directory(handle)
        if entries > MAX_ZIP_MEMBERS:
            raise _too_many_members(entries)
        if directory_size > MAX_ZIP_MEMBERS * MAX_DIRECTORY_BYTES_PER_MEMBER:
            raise ArchiveError(
                f"the archive's table of contents is {directory_size / 1e6:,.1f} MB, far more than "
                f"{MAX_ZIP_MEMBERS:,} entries need; refused as a likely zip bomb"
            )
        try:
            archive = zipfile.ZipFile(handle)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
            raise ArchiveError(f"not a ZIP archive, or a damaged one ({exc})") from None
        with archive:
            members = archive.infolist()
            # The end record's count can lie; the table of contents itself cannot.
            if len(members) > MAX_ZIP_MEMBERS:
                raise _too_many_members(len(members))
            images: list[tuple[str, bytes]] = []
            skipped: list[tuple[str, str]] = []
            budget_left = MAX_ZIP_TOTAL_BYTES
            mac_metadata = mac_metadata_at = 0
            for info in members:
                if info.is_dir():
                    continue
                if info.filename.startswith(_MAC_METADATA):
                    # A Mac adds one of these per file zipped: named one by one they would bury the rest.
                    if not mac_metadata:
                        skipped.append((_MAC_METADATA, ""))
                        mac_metadata_at = len(skipped) - 1
                    mac_metadata += 1
                    continue
                reason = _skip_reason(info, budget_left)
                if reason is None:
                    data = _read_member(archive, info)
                    if isinstance(data, bytes):
                        budget_left -= len(data)
                        images.append((info.filename, data))
                        continue
                    reason = data
                skipped.append((info.filename, reason))
            if mac_metadata:
                skipped[mac_metadata_at] = (_MAC_METADATA, f"macOS metadata ({mac_metadata} entries), not images")
    return ZipContents(images, skipped)


def _add_archive(expansion: Expansion, label: str, source: bytes | Path) -> None:
    try:
        contents = read_zip(source)
    except ArchiveError as exc:
        expansion.problems.append(f"{label}: {exc}")
        return
    expansion.sources.extend((f"{label}/{name}", data) for name, data in contents.images)
    expansion.skipped.extend((f"{label}/{name}", reason) for name, reason in contents.skipped)
    if not contents.images:
        expansion.problems.append(f"{label}: the archive holds no image files ({', '.join(IMAGE_SUFFIXES)})")


def expand_paths(targets: Sequence[Path]) -> Expansion:
    """Files as given, ZIPs opened, folders searched recursively; problems reported, not raised.

    A file named directly is kept whatever its type (the decoder then says what is wrong with it),
    except a ``.zip``, whose images are named ``archive.zip/inner/path.png``.
    """
    expansion = Expansion()
    for target in targets:
        if target.is_dir():
            images, skipped = scan_folder(target)
            expansion.sources.extend((str(path), path) for path in images)
            expansion.skipped.extend(skipped)
            if not images:
                expansion.problems.append(f"{target}: folder holds no image files ({', '.join(IMAGE_SUFFIXES)})")
        elif target.is_file() and target.suffix.lower() == ".zip":
            _add_archive(expansion, str(target), target)
        elif target.is_file():
            expansion.sources.append((str(target), target))
        else:
            expansion.problems.append(f"{target}: no such file or folder")
    return expansion


def expand_uploads(uploads: Iterable[tuple[str, bytes]]) -> Expansion:
    """Uploaded files as (name, bytes): images kept as they are, ZIPs opened into their image members."""
    expansion = Expansion()
    for name, data in uploads:
        if name.lower().endswith(".zip"):
            _add_archive(expansion, name, data)
        else:
            expansion.sources.append((name, data))
    return expansion


def class_folder_examples(zip_bytes: bytes, classes: list[str]) -> tuple[list[tuple[str, str, bytes]], list[str]]:
    """(class, member name, bytes) for each image in a ZIP of class folders (the folder that holds an image
    names its class, case-insensitively), and a note for each member skipped. Raises ArchiveError for a
    damaged archive or a folder that names no class: what a lab profile and a teaching deck are made from."""
    contents = read_zip(zip_bytes)
    by_lower = {name.lower(): name for name in classes}
    examples, unknown = [], set()
    for member, data in contents.images:
        folder = member.split("/")[-2] if "/" in member else "(no folder)"
        if folder.lower() in by_lower:
            examples.append((by_lower[folder.lower()], member, data))
        else:
            unknown.add(folder)
    if unknown:
        raise ArchiveError(
            f"folders that name no class of this model: {', '.join(sorted(unknown))}. "
            f"Folder names must be classes: {', '.join(classes)}"
        )
    return examples, [f"skipped {name}: {reason}" for name, reason in contents.skipped]
