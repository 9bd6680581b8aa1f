"""Output names and the earlier run in an output folder (the CLI's side is in test_cli.py)."""

from __future__ import annotations

import json
from pathlib import Path, PurePath

import pytest

from mieruka.outputs import MAX_NAME_BYTES, Namer, find_earlier_run, label_part, safe_component


@pytest.mark.parametrize(
    ("label", "part"),
    [
        ("golden retriever", "golden_retriever"),  # ASCII labels are named as in 0.1.0
        ("jack-o'-lantern", "jack-o_-lantern"),
        ("St. Bernard", "St._Bernard"),
        ("gradcam++", "gradcampp"),
        ("猫", "猫"),
        ("ラブラドール レトリバー", "ラブラドール_レトリバー"),
        ("बिल्ली", "बिल्ली"),  # combining vowel signs stay
        ("Straße", "Straße"),
        ("🐱 cat", "🐱_cat"),  # symbols such as emoji are valid in names on every common file system
        ('a/b\\c:d*e?f"g<h>i|j', "a_b_c_d_e_f_g_h_i_j"),
        ("tab\there\x00nul\nline", "tab_here_nul_line"),
        ("???", ""),
    ],
)
def test_label_part_keeps_every_script_and_drops_what_is_unsafe(label, part):
    assert label_part(label) == part


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("a:b", "a_b"),
        ("my photo", "my photo"),
        (" .hidden. ", "hidden"),
        ("..", "_"),
        ("a\x01b", "a_b"),
        ("e\u0301", "\u00e9"),  # NFC, as APFS and NTFS compare names
    ],
)
def test_safe_component(text, name):
    assert safe_component(text) == name


def test_long_names_are_cut_in_bytes_and_keep_the_label():
    name = Namer().name(PurePath("写真" * 100 + ".jpg"), "猫" * 100, ".png").name
    assert len(name.encode()) <= MAX_NAME_BYTES and name.endswith("_" + "猫" * 33 + ".png")
    assert len(safe_component("é" * 300).encode()) <= MAX_NAME_BYTES


def test_namer_mirrors_folders_and_keeps_names_unique_as_case_insensitive_systems_see_them():
    namer = Namer()
    names = [
        namer.name(PurePath(place), label, ".png").as_posix()
        for place, label in [
            ("a/cat.jpg", "tabby"),
            ("b/cat.jpg", "tabby"),
            ("a/cat.png", "tabby"),
            ("A/Cat.jpg", "tabby"),
            ("cat.jpg", "???"),
            ("a:b/cat.jpg", "tabby"),
        ]
    ]
    assert names == [
        "a/cat_tabby.png",
        "b/cat_tabby.png",
        "a/cat_tabby-2.png",
        "A/Cat_tabby-3.png",
        "cat_class.png",
        "a_b/cat_tabby.png",
    ]


def _earlier_run(out: Path, *records: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_removing_an_earlier_run_removes_only_the_files_it_lists(tmp_path):
    out = tmp_path / "out"
    (out / "a").mkdir(parents=True)
    (out / "keep").mkdir()
    for name in ("a/cat_x.png", "a/cat_x.npy", "keep/cat_y.png", "keep/mine.txt", "mine.png", "cat.jpg"):
        (out / name).write_bytes(b"")
    (tmp_path / "victim.png").write_bytes(b"")
    _earlier_run(
        out,
        {"file": str(out / "cat.jpg"), "output": "a/cat_x.png", "map": "a/cat_x.npy"},
        {"file": "cat.jpg", "output": "keep/cat_y.png", "outputs": {"gradcam": "../victim.png"}},
        {"file": "gone.jpg", "error": "gone.jpg: no such file"},
    )
    earlier = find_earlier_run(out)
    assert earlier is not None
    assert sorted(p.relative_to(out).as_posix() for p in earlier.files) == [
        "a/cat_x.npy",
        "a/cat_x.png",
        "keep/cat_y.png",
    ]
    earlier.remove()
    left = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    assert left == ["cat.jpg", "keep", "keep/mine.txt", "mine.png"]  # emptied a/ is gone too
    assert (tmp_path / "victim.png").exists()


def test_paths_written_by_0_1_0_are_found(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "maps"
    (out).mkdir()
    (out / "cat_tabby.png").write_bytes(b"")
    (out / "dog_pug.png").write_bytes(b"")
    _earlier_run(
        out,
        {"file": "cat.jpg", "output": "maps/cat_tabby.png"},  # relative to where 0.1.0 ran
        {"file": "dog.jpg", "output": str(out / "dog_pug.png")},  # --out given as an absolute path
    )
    find_earlier_run("maps").remove()
    assert not list(out.iterdir())


def test_what_is_not_an_earlier_run(tmp_path):
    assert find_earlier_run(tmp_path / "new") is None
    assert find_earlier_run(tmp_path) is None  # a folder without results.jsonl
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is a file, expected an output folder"):
        find_earlier_run(tmp_path / "file")
    (tmp_path / "results.jsonl").write_text('{"output": "a.png"}\nnot json\n')
    with pytest.raises(ValueError, match="line 2 is not a mieruka record"):
        find_earlier_run(tmp_path)
