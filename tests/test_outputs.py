"""Output names (the CLI's side is in test_cli.py)."""

from __future__ import annotations

from pathlib import PurePath

import pytest

from mieruka.outputs import MAX_NAME_BYTES, Namer, label_part, safe_component


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
