"""The README stays short, and every page in docs/ is reachable from the site's navigation."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README_MAX_LINES = 200


def nav_pages() -> list[str]:
    """The .md paths listed under ``nav:`` in mkdocs.yml (read without a YAML library)."""
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = re.search(r"^nav:\s*\n((?:[ \t]+.*\n?|\s*\n)*)", text, re.MULTILINE)
    assert nav, "mkdocs.yml has no nav"
    return re.findall(r"^\s*-\s*(?:[^\n:]+:\s*)?([\w./-]+\.md)\s*$", nav.group(1), re.MULTILINE)


def test_readme_is_short() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move the detail into docs/"
    )


def test_every_page_is_in_the_nav() -> None:
    listed = set(nav_pages())
    pages = sorted(path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md"))
    missing = [page for page in pages if page not in listed]
    assert not missing, f"pages not in the nav of mkdocs.yml: {', '.join(missing)}"


def test_every_nav_entry_exists() -> None:
    listed = nav_pages()
    assert "index.md" in listed and "commands/run.md" in listed, listed
    absent = [page for page in listed if not (DOCS / page).is_file()]
    assert not absent, f"nav entries with no page in docs/: {', '.join(absent)}"
