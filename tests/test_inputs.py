"""Files, folders and ZIP archives as people bring them: what is used, and every skip named with its reason."""

from __future__ import annotations

import io
import struct
import zipfile

import pytest

from hematovision.core import inputs
from hematovision.core.inputs import ArchiveError, expand_paths, expand_uploads, read_zip, scan_folder
from tests.conftest import encode, synthetic_cell


def png(seed: int = 0) -> bytes:
    return encode(synthetic_cell(seed, seed))


def make_zip(members: list[tuple[str, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members:
            archive.writestr(name, data)  # a name ending in "/" is a folder entry
    return buffer.getvalue()


def central_entries(data: bytes) -> dict[str, int]:
    """Offset of each member's central-directory entry, by name."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        at = archive.start_dir
        count = len(archive.infolist())
    offsets = {}
    for _ in range(count):
        assert data[at : at + 4] == b"PK\x01\x02"
        name_length, extra_length, comment_length = struct.unpack_from("<3H", data, at + 28)
        offsets[data[at + 46 : at + 46 + name_length].decode()] = at
        at += 46 + name_length + extra_length + comment_length
    return offsets


def mark_encrypted(data: bytes, name: str) -> bytes:
    """zipfile clears flag bits when writing, so the encryption bit is set in both headers by hand."""
    patched = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        local = archive.getinfo(name).header_offset
    central = central_entries(data)[name]
    for offset in (local + 6, central + 8):
        (flags,) = struct.unpack_from("<H", patched, offset)
        struct.pack_into("<H", patched, offset, flags | 0x1)
    return bytes(patched)


def test_a_folder_gives_its_images_sorted_and_names_every_skip(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.png").write_bytes(png(1))
    (tmp_path / "a.PNG").write_bytes(png(2))
    (tmp_path / "b" / "c.jpg").write_bytes(encode(synthetic_cell(0, 3), "JPEG"))
    (tmp_path / "logo.svg").write_text("<svg/>")
    (tmp_path / "b" / "notes.txt").write_text("counted on Monday")
    (tmp_path / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "cell.png").write_bytes(png(4))
    (tmp_path / "bundle.zip").write_bytes(make_zip([("x.png", png(5))]))

    images, skipped = scan_folder(tmp_path)

    assert images == [tmp_path / "a.PNG", tmp_path / "b" / "c.jpg", tmp_path / "b" / "z.png"]
    reasons = dict(skipped)
    assert reasons[str(tmp_path / "logo.svg")] == "not an image type HematoVision reads (.svg)"
    assert reasons[str(tmp_path / "b" / "notes.txt")] == "not an image type HematoVision reads (.txt)"
    assert "hidden file" in reasons[str(tmp_path / ".DS_Store")]
    assert "hidden folder" in reasons[str(tmp_path / ".git")]
    assert "ZIP archive inside a folder, not opened" in reasons[str(tmp_path / "bundle.zip")]
    assert len(skipped) == 5
    assert [name for name, _ in skipped] == sorted(name for name, _ in skipped)


def test_expand_paths_opens_a_zip_named_directly_and_reports_the_rest(tmp_path):
    archive = tmp_path / "class.zip"
    archive.write_bytes(make_zip([("inner/", b""), ("inner/cell.png", png(1)), ("readme.txt", b"hi")]))
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK but not really")
    (tmp_path / "empty").mkdir()
    single = tmp_path / "single.png"
    single.write_bytes(png(2))

    expansion = expand_paths([archive, single, broken, tmp_path / "empty", tmp_path / "missing.png"])

    assert expansion.sources[0] == (f"{archive}/inner/cell.png", png(1))
    assert expansion.sources[1] == (str(single), single)
    assert len(expansion.sources) == 2
    assert expansion.skipped == [(f"{archive}/readme.txt", "not an image type HematoVision reads (.txt)")]
    problems = "\n".join(expansion.problems)
    assert f"{broken}: not a ZIP archive" in problems
    assert "empty: folder holds no image files" in problems
    assert "missing.png: no such file or folder" in problems


def test_a_zip_gives_its_images_in_archive_order_with_their_inner_paths():
    data = make_zip([("slides/", b""), ("slides/b.png", png(1)), ("a/c.jpg", png(2)), ("top.png", png(3))])

    images, skipped = read_zip(data)

    assert images == [("slides/b.png", png(1)), ("a/c.jpg", png(2)), ("top.png", png(3))]
    assert skipped == []  # the folder entry is ignored silently


def test_a_zip_path_reads_like_its_bytes(tmp_path):
    data = make_zip([("cell.png", png(1)), ("x.svg", b"<svg/>")])
    (tmp_path / "a.zip").write_bytes(data)
    assert read_zip(tmp_path / "a.zip") == read_zip(data) == read_zip(str(tmp_path / "a.zip"))


def test_hostile_and_unusable_members_are_named_and_skipped():
    members = [
        ("good.png", png(1)),
        ("../evil.png", png(2)),
        ("/etc/abs.png", png(3)),
        ("C:\\windows.png", png(4)),
        ("nested/more.zip", make_zip([("inside.png", png(5))])),
        ("backup.tar.gz", b"\x1f\x8b"),
        ("secret.png", png(6)),
        ("notes.txt", b"hello"),
        (".hidden.png", png(7)),
        ("__MACOSX/._good.png", b"\0"),
        ("__MACOSX/._secret.png", b"\0"),
        ("last.png", png(8)),
    ]
    data = mark_encrypted(make_zip(members), "secret.png")

    images, skipped = read_zip(data)

    assert [name for name, _ in images] == ["good.png", "last.png"]
    reasons = dict(skipped)
    assert "unsafe path" in reasons["../evil.png"]
    assert "unsafe path" in reasons["/etc/abs.png"]
    assert "unsafe path" in reasons["C:\\windows.png"]
    assert reasons["nested/more.zip"] == "archive inside the archive (.zip), not opened"
    assert reasons["backup.tar.gz"] == "archive inside the archive (.gz), not opened"
    assert reasons["secret.png"] == "encrypted (password-protected), not read"
    assert reasons["notes.txt"] == "not an image type HematoVision reads (.txt)"
    assert "hidden file" in reasons[".hidden.png"]
    assert reasons["__MACOSX/"] == "macOS metadata (2 entries), not images"
    # In archive order, the macOS folder named once where it begins.
    assert [name for name, _ in skipped] == [
        "../evil.png", "/etc/abs.png", "C:\\windows.png", "nested/more.zip", "backup.tar.gz", "secret.png",
        "notes.txt", ".hidden.png", "__MACOSX/",
    ]  # fmt: skip


def test_too_many_members_refuses_the_archive(monkeypatch):
    monkeypatch.setattr(inputs, "MAX_ZIP_MEMBERS", 3)
    data = make_zip([(f"cell_{i}.png", png(i)) for i in range(4)])

    with pytest.raises(ArchiveError, match="holds 4 entries; HematoVision opens archives of at most 3"):
        read_zip(data)
    assert len(read_zip(make_zip([(f"cell_{i}.png", png(i)) for i in range(3)])).images) == 3


def test_an_end_record_that_understates_the_member_count_is_still_caught(monkeypatch):
    monkeypatch.setattr(inputs, "MAX_ZIP_MEMBERS", 3)
    data = bytearray(make_zip([(f"cell_{i}.png", png(i)) for i in range(4)]))
    end = data.rfind(b"PK\x05\x06")
    struct.pack_into("<2H", data, end + 8, 1, 1)

    with pytest.raises(ArchiveError, match="holds 4 entries"):
        read_zip(bytes(data))


def test_members_past_the_total_size_limit_are_skipped(monkeypatch):
    first, second, third = png(1), png(2), b"x" * 10
    monkeypatch.setattr(inputs, "MAX_ZIP_TOTAL_BYTES", len(first) + len(second) // 2)
    data = make_zip([("a.png", first), ("b.png", second), ("c.png", third)])

    images, skipped = read_zip(data)

    # The small last member still fits: the limit bounds memory, not the order of the members.
    assert [name for name, _ in images] == ["a.png", "c.png"]
    assert skipped[0][0] == "b.png"
    assert "past the limit" in skipped[0][1] and "uncompressed per archive" in skipped[0][1]


def test_a_member_compressed_like_a_bomb_is_skipped(monkeypatch):
    monkeypatch.setattr(inputs, "RATIO_CHECKED_ABOVE_BYTES", 1000)
    data = make_zip([("bomb.png", bytes(500_000)), ("cell.png", png(1))])

    images, skipped = read_zip(data)

    assert [name for name, _ in images] == ["cell.png"]
    assert skipped[0][0] == "bomb.png" and "likely zip bomb" in skipped[0][1]


def test_a_member_holding_more_than_it_declares_is_not_read_past_its_declared_size():
    data = bytearray(make_zip([("liar.png", png(1) * 4), ("cell.png", png(2))]))
    entry = central_entries(bytes(data))["liar.png"]
    struct.pack_into("<L", data, entry + 24, 100)  # the declared uncompressed size

    images, skipped = read_zip(bytes(data))

    assert [name for name, _ in images] == ["cell.png"]
    assert skipped[0][0] == "liar.png" and "not read" in skipped[0][1]


@pytest.mark.parametrize(
    "data",
    [b"", b"this is a text file, not an archive", make_zip([("cell.png", png(1))])[:-10], b"PK\x05\x06" + b"\0" * 5],
    ids=["empty", "text", "truncated", "short-end-record"],
)
def test_a_file_that_is_not_a_readable_zip_raises_a_clear_error(data):
    with pytest.raises(ArchiveError, match="not a ZIP archive, or a damaged one") as caught:
        read_zip(data)
    assert isinstance(caught.value, ValueError)


def test_a_missing_zip_path_raises_a_clear_error(tmp_path):
    with pytest.raises(ArchiveError, match="cannot read the archive"):
        read_zip(tmp_path / "nowhere.zip")


def test_uploads_keep_images_and_open_zips():
    archive = make_zip([("day1/cell.png", png(1)), ("day1/notes.txt", b"n")])

    expansion = expand_uploads([("a.png", png(2)), ("Lab.ZIP", archive), ("bad.zip", b"junk")])

    assert expansion.sources == [("a.png", png(2)), ("Lab.ZIP/day1/cell.png", png(1))]
    assert expansion.skipped == [("Lab.ZIP/day1/notes.txt", "not an image type HematoVision reads (.txt)")]
    assert len(expansion.problems) == 1 and expansion.problems[0].startswith("bad.zip: not a ZIP archive")


def test_classify_cli_names_what_it_skips_and_classifies_zip_members(tiny_model_dir, tmp_path, capsys):
    from hematovision.cli.main import main

    folder = tmp_path / "cells"
    folder.mkdir()
    (folder / "cell.png").write_bytes(png(1))
    (folder / "logo.svg").write_text("<svg/>")
    bundle = folder / "bundle.zip"
    bundle.write_bytes(make_zip([("inner/cell_a.png", png(2)), ("inner/x.txt", b"x")]))
    table = tmp_path / "out.csv"

    code = main(["classify", str(folder), str(bundle), "--model", str(tiny_model_dir), "--csv", str(table)])

    assert code == 0
    captured = capsys.readouterr()
    assert f"skipped {folder / 'logo.svg'}: not an image type HematoVision reads (.svg)" in captured.err
    assert f"skipped {bundle}: ZIP archive inside a folder, not opened" in captured.err
    assert f"skipped {bundle}/inner/x.txt: not an image type HematoVision reads (.txt)" in captured.err
    assert f"{bundle}/inner/cell_a.png\t" in captured.out
    assert "classified 2 of 2 images or cells in 2 files" in captured.err
    files = [row.split(",")[0] for row in table.read_text().splitlines()[1:]]
    assert files == [str(folder / "cell.png"), f"{bundle}/inner/cell_a.png"]


def test_classify_streams_shards_and_resumes(tiny_model_dir, tmp_path, capsys):
    import csv

    import numpy as np
    from PIL import Image

    from hematovision.cli.main import main
    from tests.conftest import synthetic_cell

    folder = tmp_path / "cells"
    folder.mkdir()
    for i in range(12):
        Image.fromarray(synthetic_cell(i % 3, 300 + i, 96)).save(folder / f"cell_{i:02d}.png")
    whole = tmp_path / "whole.csv"
    assert main(["classify", str(folder), "--model", str(tiny_model_dir), "--csv", str(whole)]) == 0
    reference = list(csv.DictReader(whole.open()))
    # Three workers, each its shard: together exactly the single-process rows, none twice.
    parts = []
    for index in (1, 2, 3):
        table = tmp_path / f"shard{index}.csv"
        args = ["classify", str(folder), "--model", str(tiny_model_dir), "--csv", str(table), "--shard", f"{index}/3"]
        assert main(args) == 0
        parts += list(csv.DictReader(table.open()))
    assert sorted(parts, key=lambda row: row["file"]) == sorted(reference, key=lambda row: row["file"])
    assert 0 < len(list(csv.DictReader((tmp_path / "shard1.csv").open()))) < len(reference)
    # An interrupted run: five rows written, the last maybe incomplete. Resuming redoes it and the rest.
    interrupted = tmp_path / "interrupted.csv"
    lines = whole.read_text().splitlines()
    interrupted.write_text("\n".join(lines[:6]) + "\n")
    capsys.readouterr()
    args = ["classify", str(folder), "--model", str(tiny_model_dir), "--csv", str(interrupted), "--resume"]
    assert main(args) == 0
    assert "resuming: 4 files already" in capsys.readouterr().err
    resumed = list(csv.DictReader(interrupted.open()))
    assert [row["file"] for row in resumed] == [row["file"] for row in reference]
    np.testing.assert_allclose(
        [float(row["confidence"]) for row in resumed], [float(row["confidence"]) for row in reference], atol=1e-4
    )
    # A table written with other columns (an older version, another model) is refused, not misaligned.
    older = tmp_path / "older.csv"
    older.write_text("file,predicted_class,confidence\ncell_0.png,neutrophil,0.9\n")
    assert main(["classify", str(folder), "--model", str(tiny_model_dir), "--csv", str(older), "--resume"]) == 2
    assert "other columns" in capsys.readouterr().err and older.read_text().count("\n") == 2
