"""Durations and sizes as written in config files."""

from __future__ import annotations

import math

import pytest

from proxy.core.units import parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("2s", 2.0, id="seconds"),
        pytest.param("150ms", 0.15, id="milliseconds"),
        pytest.param("250us", 250e-6, id="microseconds"),
        pytest.param("1m30s", 90.0, id="minutes-and-seconds"),
        pytest.param("1h", 3600.0, id="hours"),
        pytest.param("1h2m3s4ms", 3723.004, id="every-unit"),
        pytest.param("1.5s", 1.5, id="fraction"),
        pytest.param("0s", 0.0, id="zero"),
        pytest.param("  10s ", 10.0, id="surrounding-space"),
        pytest.param("30", 30.0, id="bare-number-string"),
        pytest.param("2.5", 2.5, id="bare-fraction-string"),
        pytest.param(30, 30.0, id="yaml-int"),
        pytest.param(0.25, 0.25, id="yaml-float"),
        pytest.param(0, 0.0, id="yaml-zero"),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)
    assert isinstance(parse_duration(text), float)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("3 parsecs", id="unknown-unit"),
        pytest.param("10 s", id="space-before-unit"),
        pytest.param("2S", id="upper-case-unit"),
        pytest.param("1d", id="days"),
        pytest.param("s", id="unit-only"),
        pytest.param("", id="empty"),
        pytest.param("   ", id="blank"),
        pytest.param("-1s", id="negative-string"),
        pytest.param("1.s", id="dangling-point"),
        pytest.param(".5s", id="leading-point"),
        pytest.param("1s 2s", id="space-between-parts"),
        pytest.param("5s!", id="trailing-junk"),
        pytest.param(-1, id="negative-number"),
        pytest.param(-0.5, id="negative-float"),
        pytest.param(math.inf, id="infinity"),
        pytest.param(math.nan, id="nan"),
        pytest.param(True, id="bool"),
        pytest.param(None, id="null"),
        pytest.param(["1s"], id="list"),
        pytest.param({"s": 1}, id="mapping"),
    ],
)
def test_parse_duration_rejects(value):
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        pytest.param("512", 512, id="bare-bytes-string"),
        pytest.param(512, 512, id="yaml-int"),
        pytest.param(0, 0, id="zero"),
        pytest.param("100B", 100, id="bytes-unit"),
        pytest.param("64KiB", 64 * 1024, id="kibibytes"),
        pytest.param("10MiB", 10 * 1024**2, id="mebibytes"),
        pytest.param("1GiB", 1024**3, id="gibibytes"),
        pytest.param("10KB", 10_000, id="kilobytes-decimal"),
        pytest.param("10MB", 10_000_000, id="megabytes-decimal"),
        pytest.param("2GB", 2_000_000_000, id="gigabytes-decimal"),
        pytest.param("8k", 8 * 1024, id="nginx-k-binary"),
        pytest.param("8K", 8 * 1024, id="nginx-K-binary"),
        pytest.param("1M", 1024**2, id="nginx-M-binary"),
        pytest.param("1G", 1024**3, id="nginx-G-binary"),
        pytest.param("64 KiB", 64 * 1024, id="space-before-unit"),
        pytest.param(" 1MiB ", 1024**2, id="surrounding-space"),
    ],
)
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("lots", id="word"),
        pytest.param("1.5MiB", id="fraction"),
        pytest.param("-1", id="negative-string"),
        pytest.param("10kb", id="lower-case-kb"),
        pytest.param("10 TiB", id="unknown-unit"),
        pytest.param("MiB", id="unit-only"),
        pytest.param("", id="empty"),
        pytest.param("1 MiB extra", id="trailing-junk"),
        pytest.param(-1, id="negative-number"),
        pytest.param(1.5, id="float"),
        pytest.param(True, id="bool"),
        pytest.param(None, id="null"),
        pytest.param([1], id="list"),
    ],
)
def test_parse_size_rejects(value):
    with pytest.raises(ValueError):
        parse_size(value)
