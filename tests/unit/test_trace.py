"""trace: a traceparent's trace id, read as strictly as W3C Trace Context says."""

from __future__ import annotations

import pytest

from proxy.core.trace import from_headers, trace_id

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{PARENT}-01"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(VALID, TRACE, id="version-00-sampled"),
        pytest.param(f"00-{TRACE}-{PARENT}-00", TRACE, id="version-00-not-sampled"),
        pytest.param(f"00-{TRACE}-{PARENT}-ff", TRACE, id="flags-unknown-bits"),
        pytest.param(f" \t{VALID}\t ", TRACE, id="optional-whitespace"),
        pytest.param(f"01-{TRACE}-{PARENT}-01", TRACE, id="later-version"),
        pytest.param(f"cc-{TRACE}-{PARENT}-01-what-the-future-will-be-like", TRACE, id="later-version-more-fields"),
        pytest.param(f"fe-{TRACE}-{PARENT}-01-", TRACE, id="later-version-empty-field"),
        # invalid: no trace id
        pytest.param(None, None, id="absent"),
        pytest.param("", None, id="empty"),
        pytest.param(f"ff-{TRACE}-{PARENT}-01", None, id="version-ff"),
        pytest.param(f"00-{TRACE}-{PARENT}-01-extra", None, id="version-00-extra-field"),
        pytest.param(f"00-{TRACE}-{PARENT}-01 ", TRACE, id="version-00-trailing-space-is-whitespace"),
        pytest.param(f"00-{TRACE}-{PARENT}-1", None, id="flags-short"),
        pytest.param(f"00-{TRACE[:-1]}-{PARENT}-01", None, id="trace-id-short"),
        pytest.param(f"00-{TRACE}0-{PARENT}-01", None, id="trace-id-long"),
        pytest.param(f"00-{TRACE}-{PARENT[:-1]}-01", None, id="parent-id-short"),
        pytest.param(f"00-{'0' * 32}-{PARENT}-01", None, id="trace-id-all-zero"),
        pytest.param(f"00-{TRACE}-{'0' * 16}-01", None, id="parent-id-all-zero"),
        pytest.param(f"00-{TRACE.upper()}-{PARENT}-01", None, id="trace-id-upper-case"),
        pytest.param(f"00-{TRACE}-{PARENT.upper()}-01", None, id="parent-id-upper-case"),
        pytest.param(f"00-{TRACE}-{PARENT}-0A", None, id="flags-upper-case"),
        pytest.param(f"0A-{TRACE}-{PARENT}-01", None, id="version-upper-case"),
        pytest.param(f"00-{TRACE[:-1]}g-{PARENT}-01", None, id="trace-id-not-hex"),
        pytest.param(f"00_{TRACE}_{PARENT}_01", None, id="wrong-separator"),
        pytest.param(f"0-{TRACE}-{PARENT}-01", None, id="version-one-digit"),
        pytest.param(f"000-{TRACE}-{PARENT}-01", None, id="version-three-digits"),
        pytest.param(f"01-{TRACE}-{PARENT}-01x", None, id="later-version-no-dash-after-flags"),
        pytest.param(f"01-{TRACE}-{PARENT}", None, id="later-version-too-short"),
        pytest.param(f"01-{'0' * 32}-{PARENT}-01", None, id="later-version-trace-id-all-zero"),
        pytest.param(f"00-{TRACE}-{PARENT}-01\n", None, id="line-break"),
        pytest.param(f"00-{TRACE}-{PARENT}-01,{VALID}", None, id="list-in-one-line"),
        pytest.param("\u0660" * 2 + f"-{TRACE}-{PARENT}-01", None, id="non-ascii-digits"),
    ],
)
def test_trace_id(value, expected):
    assert trace_id(value) == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param([VALID], TRACE, id="one"),
        pytest.param([], None, id="none"),
        pytest.param([VALID, VALID], None, id="two-lines"),
        pytest.param(["nonsense"], None, id="one-invalid"),
    ],
)
def test_from_headers(values, expected):
    assert from_headers(values) == expected
