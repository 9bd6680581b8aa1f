"""Class names: read from a file, the ImageNet list shipped offline, and finding a class by name.

A name typed by a person rarely matches a label exactly: ``cat`` should find ``tabby``, ``tiger cat``
and ``Egyptian cat`` on ImageNet, so suggestions look at whole words first, then parts of words, then
close spellings, and for ImageNet also at each class's WordNet synonyms (shipped with timm).
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import re
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import MierukaError

FEW_CLASSES = 20  # up to this many, an unknown name gets the whole list


class LabelsError(MierukaError):
    """A labels file that cannot be used; the message names it and says what to do."""


def load_labels(path: str | os.PathLike) -> list[str]:
    """Class names from a UTF-8 text file (one a line) or JSON (a list, or a mapping index -> name)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise LabelsError(f"{path}: cannot read labels ({error.strerror or error})") from None
    text = _decode(raw, path)
    if path.suffix.lower() == ".json" or text.lstrip()[:1] in ("[", "{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise LabelsError(f"{path}: not valid JSON ({error})") from None
        if isinstance(data, Mapping):
            try:
                pairs = sorted((int(key), value) for key, value in data.items())
            except ValueError:
                raise LabelsError(f"{path}: a JSON mapping must go from class index to name") from None
            if [index for index, _ in pairs] != list(range(len(pairs))):
                raise LabelsError(f"{path}: class indices must run 0..{len(pairs) - 1} without gaps")
            data = [value for _, value in pairs]
        if not isinstance(data, list):
            raise LabelsError(f"{path}: expected a JSON list of names or a mapping index -> name")
        names = [_label_text(value) for value in data]
    else:
        lines = [line.strip() for line in text.splitlines()]
        while lines and not lines[-1]:
            lines.pop()  # blank lines at the end are no classes
        blank = next((number for number, line in enumerate(lines, 1) if not line), None)
        if blank is not None:
            raise LabelsError(
                f"{path}: line {blank} is blank: each line names the class of its index, so a blank line "
                "would shift every name after it; remove the line or write the class's name there"
            )
        names = lines
    if not names:
        raise LabelsError(f"{path}: holds no class names")
    return names


def _decode(raw: bytes, path: Path) -> str:
    """UTF-8 (with or without a byte-order mark), or UTF-16 with one; anything else is refused.

    Legacy encodings (Shift-JIS, CP1252, ...) cannot be told apart reliably: a wrong guess would
    give wrong class names silently, so the message asks for UTF-8 instead.
    """
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            pass
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise LabelsError(
            f"{path}: not UTF-8 text (undecodable byte at line {line}; Shift-JIS or another legacy "
            "encoding?); save it as UTF-8 (e.g. iconv -f SHIFT-JIS -t UTF-8, or 'Save as UTF-8' in your editor)"
        ) from None


def _label_text(value: Any) -> str:
    # torchvision-style {"0": ["n01440764", "tench"]} lists carry the readable name last.
    return str(value[-1]) if isinstance(value, list) and value else str(value)


@functools.cache
def imagenet_labels() -> tuple[str, ...]:
    """The 1000 ImageNet class names, offline, from torchvision's weight metadata."""
    from torchvision.models import ResNet18_Weights

    return tuple(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


@functools.cache
def _imagenet_synonyms() -> tuple[str, ...]:
    """Each ImageNet class's WordNet lemmas ('tabby, tabby cat'), from the files timm ships; () if absent."""
    try:
        from importlib.resources import files

        folder = files("timm.data._info")
        synsets = folder.joinpath("imagenet_synsets.txt").read_text().split()
        lemmas = dict(
            line.split("\t", 1)
            for line in folder.joinpath("imagenet_synset_to_lemma.txt").read_text().splitlines()
            if "\t" in line
        )
    except (ImportError, OSError, ValueError):
        return ()
    return tuple(lemmas.get(synset, "") for synset in synsets) if len(synsets) == 1000 else ()


def canonical(name: str) -> str:
    """Case, '_', repeated spaces and Unicode normalization (NFKC: macOS writes names decomposed,
    full-width letters) do not count when names are compared."""
    return " ".join(unicodedata.normalize("NFKC", name).replace("_", " ").casefold().split())


def repeated_names(labels: Sequence[str]) -> list[list[int]]:
    """The classes that share a name (see :func:`canonical`), as lists of indices, first use first."""
    seen: dict[str, list[int]] = {}
    for index, label in enumerate(labels):
        seen.setdefault(canonical(str(label)), []).append(index)
    return [indices for indices in seen.values() if len(indices) > 1]


def find_classes(name: str, labels: Sequence[str]) -> list[int]:
    """The indices of the classes called `name` (see :func:`canonical`): none, one, or several where a
    labels file repeats a name."""
    wanted = canonical(name)
    return [index for index, label in enumerate(labels) if canonical(label) == wanted]


def suggest(name: str, labels: Sequence[str], limit: int = 8) -> list[str]:
    """Class names a person typing `name` probably meant, best first.

    Names holding it as a whole word, then as part of a word, then close spellings; for ImageNet the
    classes' synonyms count too (``cat`` finds ``tabby``).
    """
    wanted = canonical(name)
    if not wanted:
        return []
    synonyms = _imagenet_synonyms() if tuple(labels) == _imagenet_or_none(len(labels)) else ()
    texts = [
        canonical(label) + (", " + canonical(synonyms[i]) if synonyms else "")
        for i, label in enumerate(labels)
    ]
    word = re.compile(rf"(?<!\w){re.escape(wanted)}(?!\w)")
    whole = [i for i, text in enumerate(texts) if word.search(text)]
    part = [i for i, text in enumerate(texts) if wanted in text and i not in whole]
    chosen = whole + part
    if len(chosen) < limit:
        # close spellings of the name, of a synonym or of one word: 'retriver' -> 'golden retriever'
        matcher = difflib.SequenceMatcher(b=wanted)
        scores = {}
        for i, text in enumerate(texts):
            if i in chosen:
                continue
            phrases = text.split(", ")
            words = [w for phrase in phrases for w in phrase.split()]
            score = max(_similarity(matcher, p, 0.6) for p in phrases)
            score = max(score, max((_similarity(matcher, w, 0.75) for w in words), default=0.0))
            if score > 0:
                scores[i] = score
        chosen += sorted(scores, key=lambda i: -scores[i])
    return [labels[i] for i in chosen[:limit]]


def _similarity(matcher: difflib.SequenceMatcher, text: str, cutoff: float) -> float:
    """difflib's ratio of `text` to the matcher's name when it reaches `cutoff`, else 0 (cheap bounds first)."""
    matcher.set_seq1(text)
    if matcher.real_quick_ratio() < cutoff or matcher.quick_ratio() < cutoff:
        return 0.0
    ratio = matcher.ratio()
    return ratio if ratio >= cutoff else 0.0


def _imagenet_or_none(count: int) -> tuple[str, ...] | None:
    return imagenet_labels() if count == 1000 else None


def unknown_class_message(name: str, labels: Sequence[str]) -> str:
    """One line for a class name the model does not have, with what it probably meant."""
    close = suggest(name, labels)
    hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
    if len(labels) <= FEW_CLASSES:
        return f"target {name!r} is not a class of the model{hint}; its classes are {', '.join(map(repr, labels))}"
    return f"target {name!r} is not one of the model's {len(labels)} class names{hint}"
