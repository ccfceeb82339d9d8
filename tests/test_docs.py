"""The documentation cites only files in the repository: every path in a Markdown code span or link
that names one of the repository's own folders exists, and no path reaches outside the checkout
(a ``../`` path that leaves the checkout, the author's machine)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OWN_FOLDERS = ("aquant_sim/", "hw_models/", "tests/", "tools/", "docs/", ".ci/")
MACHINE_PATHS = ("/work/", "/tmp/", "/root/", "~/")
PLACEHOLDER = re.compile(r"[<>{}*$]")
SPAN = re.compile(r"`([^`\n]+)`|\]\(([^)\s]+)\)")


def _documents() -> list[Path]:
    found = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "tests").rglob("README.md"))]
    return [p for p in found if p.is_file()]


def _inside(path: Path) -> bool:
    return path.resolve().is_relative_to(ROOT)


def _cited_paths(text: str) -> list[str]:
    """The path-like words of each code span and link target: a word is cut at ``::`` (a test id)
    and at ``:N`` (a line number)."""
    paths = []
    for match in SPAN.finditer(text):
        for word in (match.group(1) or match.group(2)).split():
            word = word.strip("\"'(),;")
            word = re.split(r"::|:\d", word)[0]
            if "/" in word and not word.startswith(("http://", "https://")):
                paths.append(word)
    return paths


@pytest.mark.parametrize("document", _documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_documents_cite_only_files_in_the_repository(document):
    outside, missing = [], []
    for path in _cited_paths(document.read_text(encoding="utf-8")):
        if path.startswith(MACHINE_PATHS) or (path.startswith("../") and not _inside(document.parent / path)):
            outside.append(path)
        elif path.startswith("../") and not (document.parent / path).exists():
            missing.append(path)
        elif path.startswith(OWN_FOLDERS) and not PLACEHOLDER.search(path):
            if not (ROOT / path.rstrip("/")).exists():
                missing.append(path)
    assert not outside, f"{document.name} cites paths outside the repository: {outside}"
    assert not missing, f"{document.name} cites repository paths that do not exist: {missing}"


def test_the_citation_scan_finds_what_it_must_refuse():
    text = "see `../shared/DESIGN.md` and [x](tests/test_docs.py) and `tools/bench_sim.py:12`, `a b/c`"
    assert _cited_paths(text) == ["../shared/DESIGN.md", "tests/test_docs.py", "tools/bench_sim.py", "b/c"]
