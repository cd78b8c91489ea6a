"""The YAML keys of each config section, read off the settings dataclasses.

A setting added to `core.settings` is a key the loader accepts (and that
docs/configuration.md must document, which tests/unit/test_docs.py checks),
so the three cannot drift apart. Where a YAML key is not spelled as its field,
or a field is not a key at all, the caller says so in a commented map.

>>> from proxy.core.settings import SuccessFalse
>>> sorted(yaml_keys(SuccessFalse))
['max_body', 'pointer', 'status']
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Collection, Mapping


def yaml_keys(cls: type, renamed: Mapping[str, str | None] | None = None, *,
              only: Collection[str] | None = None) -> frozenset[str]:
    """The YAML keys of settings class `cls`: one per field it takes, by `renamed` where given.

    `renamed` maps a field name to its YAML key, or to None when the field is
    set another way (from the section's own name, say); `only` keeps these
    fields alone. A field either names that `cls` does not have is an error at
    import time, not a key silently lost.
    """
    renamed = renamed or {}
    fields = {field.name for field in dataclasses.fields(cls) if field.init}
    stale = (set(renamed) | set(only or ())) - fields
    if stale:
        raise TypeError(f"{cls.__name__} has no field {', '.join(sorted(stale))}")
    if only is not None:
        fields &= set(only)
    return frozenset(key for name in fields if (key := renamed.get(name, name)) is not None)


def field_types(cls: type, keys: frozenset[str]) -> dict[str, type]:
    """The declared type of each field of `cls` named in `keys` (float, int, ...).

    >>> from proxy.core.settings import ServerSettings
    >>> field_types(ServerSettings, frozenset({"max_headers", "stop_delay"})) == {"max_headers": int, "stop_delay": float}
    True
    """
    hints = typing.get_type_hints(cls)
    return {key: hints[key] for key in keys}
