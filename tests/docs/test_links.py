"""The README and the pages under docs/ lead somewhere: every relative link and image names a file that
exists, and every `#anchor` a heading of the page it points at, slugged as GitHub does. The README
stays a five-minute read.

Links to the web (any `scheme:`) are not followed; links inside code are not links.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
README_MAX_LINES = 250

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
# `](target)` closes every inline link and image, nested ones included; an optional title may follow.
INLINE_LINK = re.compile(r"\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
HTML_LINK = re.compile(r"""<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
HTML_ANCHOR = re.compile(r"""<[a-z]+\b[^>]*?\b(?:id|name)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)\s*$")
GITHUB_LINE_ANCHOR = re.compile(r"^L\d+(?:-L\d+)?$")


def markdown_files(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) for every line outside fenced code blocks."""
    fence = None
    for number, line in enumerate(text.splitlines(), start=1):
        opening = FENCE.match(line)
        if fence is None and opening:
            fence = opening.group(1)[0] * len(opening.group(1))
        elif fence is not None and line.strip().startswith(fence) and not line.strip().strip(fence[0]):
            fence = None
        elif fence is None:
            yield number, line


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text lowercased, punctuation but `-` and `_` removed,
    spaces made `-`."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text stands for it
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor a page offers: its headings' slugs (a repeated one gets -1, -2 …) and HTML ids."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    previous = ""
    for _, line in prose_lines(page.read_text(encoding="utf-8")):
        heading = None
        if atx := ATX_HEADING.match(line):
            heading = atx.group(2)
        elif SETEXT_UNDERLINE.match(line) and previous.strip() and not ATX_HEADING.match(previous):
            heading = previous.strip()
        if heading is not None:
            base = slug(heading)
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
        found.update(HTML_ANCHOR.findall(line))
        previous = line
    return found


def link_targets(line: str) -> list[str]:
    """The targets of the links and images on one line, code spans left out."""
    line = INLINE_CODE.sub("", line)
    targets = [m.group(1) for m in INLINE_LINK.finditer(line)]
    if definition := REFERENCE_DEFINITION.match(line):
        targets.append(definition.group(1))
    targets += HTML_LINK.findall(line)
    return [t[1:-1] if t.startswith("<") and t.endswith(">") else t for t in targets]


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """`file:line: (target) why` for every relative link of `page` that leads nowhere."""
    broken = []
    where = page.relative_to(root)
    for number, line in prose_lines(page.read_text(encoding="utf-8")):
        for target in link_targets(line):
            if SCHEME.match(target):
                continue
            path_part, _, anchor = target.partition("#")
            path_part = unquote(path_part.split("?", 1)[0])
            if not path_part:
                resolved = page
            elif path_part.startswith("/"):
                resolved = root / path_part.lstrip("/")
            else:
                resolved = page.parent / path_part
            resolved = resolved.resolve()
            if not resolved.is_relative_to(root.resolve()):
                broken.append(f"{where}:{number}: ({target}) points outside the repository")
            elif not resolved.exists():
                broken.append(f"{where}:{number}: ({target}) no such file: {resolved.relative_to(root.resolve())}")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                broken.append(f"{where}:{number}: ({target}) {resolved.name} has no heading with anchor #{anchor}")
            elif anchor and resolved.suffix != ".md" and not GITHUB_LINE_ANCHOR.match(anchor):
                broken.append(f"{where}:{number}: ({target}) #{anchor} is not a line anchor of {resolved.name}")
    return broken


def test_readme_and_every_docs_page_are_checked():
    checked = {path.relative_to(ROOT).as_posix() for path in markdown_files()}
    assert "README.md" in checked
    assert {"docs/operations.md", "docs/performance.md", "docs/hms-backend.md"} <= checked


@pytest.mark.parametrize("page", markdown_files(), ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_relative_link_and_anchor_resolves(page: Path):
    broken = broken_links(page)
    assert not broken, f"{len(broken)} broken link(s):\n" + "\n".join(broken)


def test_readme_is_at_most_250_lines():
    lines = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail into a page under docs/"


# -- the checker itself: it must catch what it is here to catch --


def write_site(root: Path, pages: dict[str, str]) -> None:
    for name, text in pages.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")


def test_a_link_to_a_missing_file_is_reported_with_file_and_line(tmp_path: Path):
    write_site(tmp_path, {"README.md": "# Title\n\nSee [launcher](docs/launcher.md).\n",
                          "docs/operations.md": "# Operations\n"})
    assert broken_links(tmp_path / "README.md", tmp_path) == [
        "README.md:3: (docs/launcher.md) no such file: docs/launcher.md"]


def test_a_missing_image_and_a_link_outside_the_repository_are_reported(tmp_path: Path):
    write_site(tmp_path, {"docs/page.md": "# Page\n![shot](desk.png)\n[up](../../elsewhere.md)\n"})
    assert [line.split(" ", 2)[:2] for line in broken_links(tmp_path / "docs/page.md", tmp_path)] == [
        ["docs/page.md:2:", "(desk.png)"], ["docs/page.md:3:", "(../../elsewhere.md)"]]


def test_an_anchor_without_its_heading_is_reported_in_another_page_and_in_the_same_page(tmp_path: Path):
    write_site(tmp_path, {"README.md": "# Title\n[a](docs/ops.md#crash-loop) [b](#nowhere) [c](#title)\n",
                          "docs/ops.md": "# Ops\n## Crash loops\n"})
    assert broken_links(tmp_path / "README.md", tmp_path) == [
        "README.md:2: (docs/ops.md#crash-loop) ops.md has no heading with anchor #crash-loop",
        "README.md:2: (#nowhere) README.md has no heading with anchor #nowhere"]


def test_web_links_and_links_inside_code_are_not_followed(tmp_path: Path):
    write_site(tmp_path, {"README.md": "# T\n[web](https://example.org/x.md) [mail](mailto:a@b.c)\n"
                                       "`[not a link](missing.md)`\n"
                                       "```\n[nor this](missing.md)\n# not a heading\n```\n"})
    assert broken_links(tmp_path / "README.md", tmp_path) == []
    assert anchors(tmp_path / "README.md") == {"t"}


def test_anchors_are_github_slugs_of_the_headings(tmp_path: Path):
    write_site(tmp_path, {"page.md": "# Running it: `make run`, `make stop`\n## Faults (`PUT /admin/faults`)\n"
                                     "## Notes\n## Notes\n### Running proposals at once (`make bench-max-running`)\n"
                                     "Setext heading\n---\n"})
    assert anchors(tmp_path / "page.md") == {
        "running-it-make-run-make-stop", "faults-put-adminfaults", "notes", "notes-1",
        "running-proposals-at-once-make-bench-max-running", "setext-heading"}
