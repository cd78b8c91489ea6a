"""Validation of the keys that shape HTML pages: `brand`, `templates_dir`, a route's `template`.

Brand values land in CSS and HTML attributes, where autoescaping alone is not
enough: a colour must be a colour and a link must be http(s) or a local path.
"""

from __future__ import annotations

import re
from typing import Any

from ..core.language import LANGUAGES, supported
from .logo import check_logo
from .problems import Checker
from .values import key_path

# `brand` is a plain mapping in the settings (Settings.brand), not a dataclass: its keys are listed here.
BRAND_KEYS = frozenset({"name", "logo_url", "logo_file", "support_url", "accent_color", "footer_text", "lang"})
_COLOR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
_URL = re.compile(r"(?:https?://[^\s\"'<>]+|/[^\s\"'<>]*)")
_LANG = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*")
_TEMPLATE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\.html")


def check_brand(check: Checker, path: str, value: Any) -> dict[str, str]:
    brand = check.strings(path, value)
    for key in brand.keys() - BRAND_KEYS:
        check.problems.append(f"{key_path(path, key)}: unknown key (known keys: {', '.join(sorted(BRAND_KEYS))})")
    rules = (
        ("accent_color", _COLOR, "is not a colour (#rgb or #rrggbb)"),
        ("support_url", _URL, "is not an http(s) URL or a path starting with /"),
        ("lang", _LANG, "is not a language tag (en, de-CH)"),
    )
    for key, pattern, message in rules:
        if key in brand and brand[key] and not pattern.fullmatch(brand[key]):
            check.fail(f"{path}.{key}", brand[key], message)
    lang = brand.get("lang")
    # The pages' default language: a tag the built-in texts serve (de-CH is served by de).
    if lang and _LANG.fullmatch(lang) and supported(lang) is None:
        check.fail(f"{path}.lang", lang, f"is not a language of the built-in texts ({', '.join(sorted(LANGUAGES))})")
    brand = {key: item for key, item in brand.items() if key in BRAND_KEYS}
    check_logo(check, path, brand)  # logo_url becomes the data: URL of logo_file
    return brand


def check_template_name(check: Checker, path: str, value: Any) -> str | None:
    if isinstance(value, str) and _TEMPLATE.fullmatch(value):
        return value
    check.fail(path, value, "is not a template file name (like site_error.html, no directories)")
    return None


def check_templates_dir(check: Checker, path: str, value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value
    check.fail(path, value, "must be a directory path")
    return None
