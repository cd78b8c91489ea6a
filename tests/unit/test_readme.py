"""The README says what the code does: the variables it reads, the headers a rewritten error keeps."""

from __future__ import annotations

import re
from pathlib import Path

from proxy.core.headers import ACTIONABLE

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
VARIABLE = re.compile(r"\bERRORPROXY_[A-Z][A-Z0-9_]*")


def _read_by_the_code() -> set[str]:
    return {name for path in (ROOT / "proxy").rglob("*.py") for name in VARIABLE.findall(path.read_text())}


def _variables_table() -> list[str]:
    """The first column of the table of variables in "Running it"."""
    section = README.split("## Running it\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `(ERRORPROXY_[A-Z0-9_]+)` \|", section, re.MULTILINE)


def test_readme_lists_exactly_the_variables_the_code_reads():
    listed = _variables_table()
    assert len(listed) == len(set(listed))
    assert set(listed) == _read_by_the_code()


def test_readme_names_no_variable_that_does_not_exist():
    assert set(VARIABLE.findall(README)) <= _read_by_the_code()


def test_readme_lists_exactly_the_headers_a_rewritten_error_keeps():
    bullet = README.split("- Rewritten errors keep these headers of the upstream's response:", 1)[1]
    kept = bullet.split("They drop every other", 1)[0]
    named = [name for name in re.findall(r"`([A-Za-z-]+)`", kept) if name != "cors"]  # a key named in passing
    assert sorted(named, key=str.lower) == sorted(ACTIONABLE, key=str.lower)
