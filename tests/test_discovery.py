"""Input discovery: ordering, dedup, hidden files, output folder, loops, globs, filters, stdin."""

from __future__ import annotations

import os
from pathlib import Path

import make_images as mk
import pytest

from lucidflux_cli.imageio import discovery, formats
from lucidflux_cli.imageio.discovery import InputFile, discover, split_stdin


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A photo folder with the usual clutter; file contents do not matter to discovery."""
    root = tmp_path / "photos"
    for rel in [
        "b.png",
        "a.JPG",
        "sub/c.tif",
        "sub/deeper/d.webp",
        "z/e.heic",
        "café photo.jpg",
        "日本/写真 1.png",
        ".hidden.jpg",
        ".cache/x.jpg",
        "notes.txt",
        "anim.gif",
        "restored/old_output.jpg",
        "drafts/f.jpg",
    ]:
        touch(root / rel)
    return root


def rels(result: discovery.DiscoveryResult) -> list[str]:
    return [f.relative.as_posix() for f in result.files]


def test_folder_walk_is_sorted_and_skips_hidden_and_non_images(tree: Path) -> None:
    result = discover([str(tree)])
    assert rels(result) == [
        "a.JPG",
        "b.png",
        "café photo.jpg",
        "drafts/f.jpg",
        "restored/old_output.jpg",
        "sub/c.tif",
        "sub/deeper/d.webp",
        "z/e.heic",
        "日本/写真 1.png",
    ]
    assert result.problems == []
    assert all(f.path == tree / f.relative for f in result.files)


def test_output_folder_inside_input_is_skipped(tree: Path) -> None:
    result = discover([str(tree)], output_dir=tree / "restored")
    assert "restored/old_output.jpg" not in rels(result)
    assert len(rels(result)) == 8


def test_output_folder_as_root_is_reported(tree: Path) -> None:
    result = discover([str(tree / "restored")], output_dir=tree / "restored")
    assert result.files == []
    assert result.problems == [f"{tree / 'restored'}: skipped, it is the output folder"]


def test_input_inside_output_folder_is_still_walked(tree: Path) -> None:
    result = discover([str(tree / "sub")], output_dir=tree)  # e.g. `lucidflux photos/sub -o photos`
    assert rels(result) == ["c.tif", "deeper/d.webp"]


def test_not_recursive(tree: Path) -> None:
    assert rels(discover([str(tree)], recursive=False)) == ["a.JPG", "b.png", "café photo.jpg"]


def test_explicit_files_are_always_taken_and_mirrored_from_their_common_folder(tree: Path) -> None:
    result = discover([str(tree / "notes.txt"), str(tree / "sub" / "c.tif"), str(tree / ".hidden.jpg")])
    assert result.files == [
        InputFile(tree / "notes.txt", Path("notes.txt"), named=True),
        InputFile(tree / "sub" / "c.tif", Path("sub/c.tif"), named=True),
        InputFile(tree / ".hidden.jpg", Path(".hidden.jpg"), named=True),
    ]


def test_named_files_of_one_folder_keep_just_their_names(tree: Path) -> None:
    result = discover([str(tree / "b.png"), str(tree / "a.JPG")])
    assert rels(result) == ["b.png", "a.JPG"]


def test_same_names_from_different_folders_do_not_collide(tmp_path: Path) -> None:
    first, second = touch(tmp_path / "scans" / "1998" / "x.jpg"), touch(tmp_path / "scans" / "1999" / "x.jpg")
    text = f"{first}\n{second}\n"
    assert rels(discover(["-"], stdin_lines=split_stdin(text, nul=False))) == ["1998/x.jpg", "1999/x.jpg"]


def test_walks_take_exactly_the_extensions_asked_for(tree: Path) -> None:
    touch(tree / "scan.qoi")
    assert "scan.qoi" not in rels(discover([str(tree)]))
    only = rels(discover([str(tree)], extensions=frozenset({".qoi", ".png"})))
    assert "scan.qoi" in only and all(name.lower().endswith((".qoi", ".png")) for name in only)


def test_roots_keep_given_order_and_duplicates_are_removed(tree: Path) -> None:
    link = tree.parent / "alias.png"
    link.symlink_to(tree / "b.png")
    result = discover([str(tree / "sub"), str(tree / "b.png"), str(tree), str(link), str(tree / "sub/c.tif")])
    assert rels(result)[:3] == ["c.tif", "deeper/d.webp", "b.png"]
    assert rels(result)[3:] == [
        "a.JPG",
        "café photo.jpg",
        "drafts/f.jpg",
        "restored/old_output.jpg",
        "z/e.heic",
        "日本/写真 1.png",
    ]
    assert len({os.path.realpath(f.path) for f in result.files}) == len(result.files)


def test_missing_inputs_are_reported(tree: Path) -> None:
    result = discover([str(tree / "nope.jpg"), str(tree / "b.png")])
    assert rels(result) == ["b.png"]
    assert result.problems == [f"{tree / 'nope.jpg'}: not found"]


def test_symlink_loop_is_reported_not_fatal(tree: Path) -> None:
    (tree / "sub" / "loop").symlink_to(tree)
    result = discover([str(tree)])
    assert "sub/c.tif" in rels(result) and len(rels(result)) == 9
    assert result.problems == [f"{tree / 'sub' / 'loop'}: symlink loop, not followed"]


def test_broken_symlink_in_walk_is_reported(tree: Path) -> None:
    (tree / "gone.jpg").symlink_to(tree / "missing.jpg")
    result = discover([str(tree)])
    assert result.problems == [f"{tree / 'gone.jpg'}: broken symlink"]


def test_unreadable_folder_is_reported(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # chmod does not stop root, so simulate the failure where discovery meets it.
    real_scandir = os.scandir
    locked = tree / "sub"

    def scandir(path):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(discovery.os, "scandir", scandir)
    result = discover([str(tree)])
    assert not any(r.startswith("sub/") for r in rels(result))
    assert "b.png" in rels(result)
    assert result.problems == [f"{locked}: cannot read folder (permission denied)"]


def test_glob_patterns(tree: Path) -> None:
    result = discover([str(tree / "**" / "*.jpg")])
    assert rels(result) == ["café photo.jpg", "drafts/f.jpg", "restored/old_output.jpg"]
    assert result.files[1].path == tree / "drafts" / "f.jpg"
    result = discover([str(tree / "s*")])  # a matched folder is walked
    assert rels(result) == ["sub/c.tif", "sub/deeper/d.webp"]
    result = discover([str(tree / "**" / "*.png")], output_dir=tree / "restored")
    assert rels(result) == ["b.png", "日本/写真 1.png"]


def test_glob_respects_output_folder_and_reports_no_match(tree: Path) -> None:
    result = discover([str(tree / "**" / "*.jpg")], output_dir=tree / "restored")
    assert "restored/old_output.jpg" not in rels(result)
    result = discover([str(tree / "*.xyz")])
    assert result.files == [] and result.problems == [f"{tree / '*.xyz'}: no image files match"]


def test_include_and_exclude_are_case_insensitive(tree: Path) -> None:
    assert rels(discover([str(tree)], include=["*.jpg"])) == [
        "a.JPG",
        "café photo.jpg",
        "drafts/f.jpg",
        "restored/old_output.jpg",
    ]
    assert rels(discover([str(tree)], include=["SUB/*"])) == ["sub/c.tif", "sub/deeper/d.webp"]
    excluded = rels(discover([str(tree)], exclude=["drafts", "RESTORED", "b.PNG", "*.heic"]))
    assert excluded == ["a.JPG", "café photo.jpg", "sub/c.tif", "sub/deeper/d.webp", "日本/写真 1.png"]


def test_stdin_paths(tree: Path) -> None:
    text = f"{tree / 'b.png'}\n{tree / 'sub'}\n\n{tree / 'missing.png'}\n"
    result = discover(["-"], stdin_lines=split_stdin(text, nul=False))
    assert rels(result) == ["b.png", "c.tif", "deeper/d.webp"]
    assert result.problems == [f"{tree / 'missing.png'}: not found"]


def test_blank_stdin_lines_do_not_mean_current_folder(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree)
    result = discover(["-"], stdin_lines=["", "  ", "b.png"])
    assert rels(result) == ["b.png"] and result.problems == []
    assert discover([""]).problems == ["empty path given"]


def test_split_stdin() -> None:
    assert split_stdin("a.jpg\r\nb c.png\n\n", nul=False) == ["a.jpg", "b c.png"]
    assert split_stdin("a\nb.jpg\0c.png\0", nul=True) == ["a\nb.jpg", "c.png"]


def test_stdin_names_are_not_globbed(tmp_path: Path) -> None:
    odd = touch(tmp_path / "[1] scan.png")
    result = discover(["-"], stdin_lines=[str(odd)])
    assert result.files == [InputFile(odd, Path("[1] scan.png"), named=True)]


def test_zoo_discovery_finds_every_file(tmp_path: Path) -> None:
    zoo = mk.make_image_zoo(tmp_path / "zoo")
    result = discover([str(tmp_path / "zoo")])
    assert sorted(f.path for f in result.files) == sorted(zoo.values())
    assert result.problems == []


def test_default_extensions_are_what_the_formats_read() -> None:
    readable = formats.readable_extensions()
    assert all(ext.startswith(".") and ext == ext.lower() for ext in readable)
    assert ".gif" not in readable and {".jpg", ".jpe", ".heic", ".hif", ".tif", ".pgm", ".j2k"} <= readable
