"""README.ja.md keeps in step with README.md: same sections, code, links, flags and numbers.

The Japanese README is a translation, so its prose cannot be compared; what can be compared is everything
a translation must carry over unchanged. Section by section (the n-th heading of one file pairs with the
n-th heading of the other) the two files must have:

- headings of the same level, in the same order, with the same `code` in them;
- the same fenced code blocks, line for line, once comments are set aside (comments may be translated,
  but the lines that carry one must be the same, and every number in an English comment must be kept);
- the same inline `code` (flags, names, paths), as a multiset;
- the same tables: as many, as many rows and columns, and the same numbers in them;
- every number of the English prose (a translation may add a counter word's digit, never lose one);
- the same link and image targets, in order.

Each file links to the other before its first section. When README.md changes, README.ja.md must be
updated with it; the failure names the English section that moved.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGLISH, JAPANESE = "README.md", "README.ja.md"

FENCE = re.compile(r"^(```+|~~~+)(.*)$")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
NUMBER = re.compile(r"\d+(?:\.\d+)?")
DELIMITER = re.compile(r"^\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)+\|?$")
COMMENT = re.compile(r"(?:^|(?<=\s))#(?:\s.*)?$")


@dataclass
class Section:
    """One heading and what follows it up to the next heading (the preamble has level 0)."""

    level: int
    title: str
    prose: list[str] = field(default_factory=list)
    code: list[tuple[str, list[str]]] = field(default_factory=list)  # (info string, lines)

    @property
    def text(self) -> str:
        return "\n".join(self.prose)

    @property
    def tables(self) -> list[list[str]]:
        """Runs of lines starting with `|` that have a delimiter row (`|---|---|`): a `|x|` line is not one."""
        runs: list[list[str]] = []
        previous = False
        for line in self.prose:
            row = line.strip().startswith("|")
            if row and not previous:
                runs.append([])
            if row:
                runs[-1].append(line.strip())
            previous = row
        return [rows for rows in runs if len(rows) > 1 and DELIMITER.match(rows[1])]


def parse(text: str) -> list[Section]:
    """Split a Markdown file into sections at its headings, keeping fenced code apart from prose."""
    sections = [Section(0, "(before the first heading)")]
    fence: str | None = None
    for line in text.splitlines():
        if fence is not None:
            if line.strip().startswith(fence) and not line.strip().strip(fence[0]):
                fence = None
            else:
                sections[-1].code[-1][1].append(line)
            continue
        opening = FENCE.match(line.strip())
        if opening:
            fence = opening.group(1)
            sections[-1].code.append((opening.group(2).strip(), []))
            continue
        heading = HEADING.match(line)
        if heading:
            sections.append(Section(len(heading.group(1)), heading.group(2)))
        else:
            sections[-1].prose.append(line)
    return sections


def code_spans(text: str) -> Counter[str]:
    return Counter(" ".join(span.split()) for _, span in CODE_SPAN.findall(text))


def numbers(text: str) -> Counter[str]:
    return Counter(NUMBER.findall(text))


def link_targets(text: str) -> list[str]:
    return [target for target in LINK.findall(CODE_SPAN.sub("", text))]


def split_comment(line: str) -> tuple[str, str]:
    """A code line without its `# comment`, and the comment."""
    match = COMMENT.search(line)
    if match is None:
        return line.rstrip(), ""
    return line[: match.start()].rstrip(), match.group(0)


def slug(title: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", title.replace("`", "").strip().lower()).replace(" ", "-")


def anchors(sections: list[Section]) -> set[str]:
    seen: Counter[str] = Counter()
    found = set()
    for section in sections[1:]:
        base = slug(section.title)
        found.add(base if not seen[base] else f"{base}-{seen[base]}")
        seen[base] += 1
    return found


def missing(english: Counter[str], japanese: Counter[str]) -> list[str]:
    return sorted((english - japanese).elements())


def compare(english_text: str, japanese_text: str) -> list[str]:
    """Every way README.ja.md has fallen out of step with README.md, one line each."""
    problems: list[str] = []
    en, ja = parse(english_text), parse(japanese_text)

    # Each file links to the other before its first section.
    for name, sections, other in ((ENGLISH, en, JAPANESE), (JAPANESE, ja, ENGLISH)):
        head = "\n".join(s.text for s in sections if s.level <= 1)
        if other not in link_targets(head):
            problems.append(f"{name} must link to {other} at its top, before the first section")

    outline_en = [(s.level, sorted(code_spans(s.title).elements())) for s in en]
    outline_ja = [(s.level, sorted(code_spans(s.title).elements())) for s in ja]
    if outline_en != outline_ja:
        for k in range(max(len(en), len(ja))):
            if k >= len(en) or k >= len(ja) or outline_en[k] != outline_ja[k]:
                where = f"'{en[k].title}' (level {en[k].level})" if k < len(en) else "(no English section)"
                there = f"'{ja[k].title}' (level {ja[k].level})" if k < len(ja) else "nothing"
                problems.append(
                    f"headings differ from section {k}: README.md has {len(en)} sections, README.ja.md "
                    f"{len(ja)}; English heading {where} pairs with {there}"
                )
                break
        return problems  # sections no longer pair up: the checks below would only add noise

    own_anchors = {ENGLISH: anchors(en), JAPANESE: anchors(ja)}
    for s_en, s_ja in zip(en, ja):
        where = f"section '{s_en.title}'"

        if [info for info, _ in s_en.code] != [info for info, _ in s_ja.code]:
            problems.append(
                f"{where}: code blocks differ in number or language: "
                f"{[i for i, _ in s_en.code]} vs {[i for i, _ in s_ja.code]}"
            )
        else:
            for b, ((_, lines_en), (_, lines_ja)) in enumerate(zip(s_en.code, s_ja.code)):
                split_en = [split_comment(line) for line in lines_en]
                split_ja = [split_comment(line) for line in lines_ja]
                if [c for c, _ in split_en] != [c for c, _ in split_ja]:
                    diff = next(
                        (f"{a!r} vs {b!r}" for (a, _), (b, _) in zip(split_en, split_ja) if a != b),
                        f"{len(lines_en)} lines vs {len(lines_ja)}",
                    )
                    problems.append(f"{where}: code block {b + 1} differs: {diff}")
                    continue
                for (code, c_en), (_, c_ja) in zip(split_en, split_ja):
                    if bool(c_en) != bool(c_ja):
                        problems.append(f"{where}: code block {b + 1}: comment added or lost on {code!r}")
                    elif lost := missing(numbers(c_en), numbers(c_ja)):
                        problems.append(f"{where}: code block {b + 1}: comment on {code!r} lost {lost}")

        spans_en, spans_ja = code_spans(s_en.text), code_spans(s_ja.text)
        if spans_en != spans_ja:
            problems.append(
                f"{where}: inline code differs: only in README.md {missing(spans_en, spans_ja)}, "
                f"only in README.ja.md {missing(spans_ja, spans_en)}"
            )

        tables_en, tables_ja = s_en.tables, s_ja.tables
        if len(tables_en) != len(tables_ja):
            problems.append(
                f"{where}: {len(tables_en)} table(s) in README.md, {len(tables_ja)} in README.ja.md"
            )
        for t, (rows_en, rows_ja) in enumerate(zip(tables_en, tables_ja)):
            shape_en = [row.count("|") for row in rows_en]
            shape_ja = [row.count("|") for row in rows_ja]
            if shape_en != shape_ja:
                problems.append(
                    f"{where}: table {t + 1} has other rows or columns ({shape_en} vs {shape_ja})"
                )
            n_en, n_ja = numbers("\n".join(rows_en)), numbers("\n".join(rows_ja))
            if n_en != n_ja:
                problems.append(
                    f"{where}: table {t + 1}'s numbers differ: only in README.md {missing(n_en, n_ja)}, "
                    f"only in README.ja.md {missing(n_ja, n_en)}"
                )

        if lost := missing(numbers(s_en.text), numbers(s_ja.text)):
            problems.append(f"{where}: numbers of the English text missing from the Japanese: {lost}")

        for name, section in ((ENGLISH, s_en), (JAPANESE, s_ja)):
            for target in link_targets(section.text):
                if target.startswith("#") and target[1:] not in own_anchors[name]:
                    problems.append(f"{where}: {name} links to {target}, which is no heading of it")

        def outward(targets: list[str]) -> list[str]:
            return [t for t in targets if not t.startswith("#") and t not in (ENGLISH, JAPANESE)]

        if outward(link_targets(s_en.text)) != outward(link_targets(s_ja.text)):
            problems.append(
                f"{where}: link/image targets differ: {outward(link_targets(s_en.text))} vs "
                f"{outward(link_targets(s_ja.text))}"
            )
    return problems


def test_readme_ja_is_in_step_with_readme() -> None:
    english = (ROOT / ENGLISH).read_text(encoding="utf-8")
    japanese = (ROOT / JAPANESE).read_text(encoding="utf-8")
    problems = compare(english, japanese)
    assert not problems, (
        "README.ja.md is out of step with README.md; README.ja.md must be updated with the README "
        "(translate the changed English sections):\n  - " + "\n  - ".join(problems)
    )


EN = """日本語: [README.ja.md](README.ja.md)

# tool

## Speed

Runs `--fast` in 1.5 s, see [bench](bench.md).

| model | ms |
|---|---|
| a, 16 | 172 (1.00x) |

```console
tool run --fast      # about 3 s
```
"""

JA = """English: [README.md](README.md)

# tool

## 速度

`--fast` で 1.5 秒で動きます。[ベンチマーク](bench.md) を参照してください。

| モデル | ms |
|---|---|
| a, 16 | 172 (1.00x) |

```console
tool run --fast      # 約 3 秒
```
"""


def test_the_check_accepts_a_faithful_translation() -> None:
    assert compare(EN, JA) == []


def test_the_check_names_what_moved() -> None:
    cases = {
        "headings differ": EN + "\n## Development\n",
        "numbers of the English text": EN.replace("1.5 s", "1.2 s"),
        "inline code differs": EN.replace("`--fast` in", "`--quick` in"),
        "table 1's numbers differ": EN.replace("172 (1.00x)", "171 (1.00x)"),
        "code block 1 differs": EN.replace("tool run --fast ", "tool run --slow "),
        "comment on": EN.replace("about 3 s", "about 4 s"),
        "link/image targets differ": EN.replace("(bench.md)", "(benchmarks.md)"),
        "must link to README.ja.md": EN.replace("日本語: [README.ja.md](README.ja.md)", ""),
        "no heading of it": EN.replace("(bench.md)", "(bench.md), [up](#nowhere)"),
    }
    for expected, english in cases.items():
        problems = compare(english, JA)
        assert any(expected in p for p in problems), (expected, problems)
    assert any("section 'Speed'" in p for p in compare(cases["inline code differs"], JA))
