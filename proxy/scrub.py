"""Placeholder until the scrubber lands: flags only Python tracebacks."""

from __future__ import annotations


def unsafe_reason(text: str) -> str | None:
    return "python traceback" if "Traceback (most recent call last)" in text else None


def is_safe(text: str) -> bool:
    return unsafe_reason(text) is None


def find_unsafe_in_json(value) -> str | None:
    if isinstance(value, str):
        return unsafe_reason(value)
    if isinstance(value, dict):
        value = [*value.keys(), *value.values()]
    if isinstance(value, list):
        for item in value:
            found = find_unsafe_in_json(item)
            if found:
                return found
    return None
