"""The translation catalogs, kept true to the sources with Babel.

    python -m proxy.tools.catalogs update    # extract the texts, write errorproxy.pot, merge it into each .po
    python -m proxy.tools.catalogs compile   # each .po into the .mo beside it (shipped in the package)
    python -m proxy.tools.catalogs check     # exit 1 naming every text untranslated or .mo out of date

Texts are found by Babel's extractors: in Python, `N_("id", "English")` (the
id is the message context), `pgettext` and `npgettext` calls; in the
templates, `{% trans "id" %}...{% endtrans %}` and `pgettext(...)` through
Jinja2's extractor. A text whose id or English changes comes back untranslated
in every language (no fuzzy matching: a stale translation is worse than
English). The English catalog is the sources' own words: `update` fills it in.
A translator edits proxy/locale/<language>/LC_MESSAGES/errorproxy.po, then
runs `compile`.
"""

from __future__ import annotations

import copy
import io
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_file
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po, write_po

from ..core.language import LANGUAGES
from ..http.i18n import DOMAIN, directory

PACKAGE = Path(__file__).resolve().parents[1]  # proxy/
ROOT = PACKAGE.parent
LOCALE = PACKAGE / "locale"
TEMPLATE = LOCALE / f"{DOMAIN}.pot"
# N_(id, text): the id is the message context, as pgettext's first argument.
KEYWORDS = {**DEFAULT_KEYWORDS, "N_": ((1, "c"), 2)}
JINJA = ("jinja2.ext:babel_extract", {"newstyle_gettext": "true"})
PROJECT = "errorproxy"


def sources() -> list[tuple[Path, str, dict[str, str]]]:
    """Every file texts are extracted from, with its extraction method and options."""
    python = [(path, "python", {}) for path in sorted(PACKAGE.rglob("*.py"))]
    templates = [(path, *JINJA) for path in sorted((ROOT / "templates").glob("*.html"))]
    return [*python, *templates]


def extract() -> Catalog:
    """The catalog template: every text in the sources, each with its id (context) and where it is used."""
    template = _new(None)
    english: dict[str, object] = {}
    for path, method, options in sources():
        found = extract_from_file(method, str(path), keywords=KEYWORDS, options=options, strip_comment_tags=True)
        for line, message, comments, context in found:
            where = f"{path.relative_to(ROOT)}:{line}"
            if context is None:
                raise ValueError(f"{where}: {message!r} has no id (message context)")
            # The id alone names a text in the config's `messages`: one id, one English text.
            if english.setdefault(context, message) != message:
                raise ValueError(f"{where}: id {context!r} is used for {english[context]!r} and {message!r}")
            template.add(message, None, [(path.relative_to(ROOT).as_posix(), line)], auto_comments=comments,
                         context=context)
    return template


def po_path(language: str) -> Path:
    return LOCALE / directory(language) / "LC_MESSAGES" / f"{DOMAIN}.po"


def messages(catalog: Catalog) -> dict[tuple[str | None, object], object]:
    """A catalog's texts, without its header: what decides whether a file changed."""
    return {(message.context, _tuple(message.id)): _tuple(message.string) for message in catalog if message.id}


def _tuple(value: object) -> object:
    """A plural's forms as a tuple (read_mo gives lists, read_po tuples); no text as ""."""
    if isinstance(value, (list, tuple)):
        return tuple(item or "" for item in value)
    return value or ""


def update() -> list[Path]:
    """Write the template and merge it into each language's catalog; the files that changed."""
    template = extract()
    changed = []
    old_template = _read(TEMPLATE, None)
    if old_template is None or messages(old_template) != messages(template) or _where(old_template) != _where(template):
        _write(TEMPLATE, template)
        changed.append(TEMPLATE)
    for language in LANGUAGES:
        path = po_path(language)
        catalog = _read(path, language) or _new(language)
        before, where = messages(catalog), _where(catalog)
        # A copy each: Babel's update hands the template's own message objects to the catalog.
        catalog.update(copy.deepcopy(template), no_fuzzy_matching=True, update_creation_date=False)
        catalog.obsolete.clear()  # a removed text is gone, not kept commented out
        if language == "en":
            for message in catalog:
                if message.id:
                    message.string = message.id  # the sources are written in English
        if messages(catalog) != before or _where(catalog) != where:
            _write(path, catalog)
            changed.append(path)
    return changed


def compile_catalogs() -> list[Path]:
    """Each .po into its .mo; the .mo files written."""
    written = []
    for language in LANGUAGES:
        path = po_path(language)
        catalog = _read(path, language)
        if catalog is None:
            raise FileNotFoundError(path)
        target = path.with_suffix(".mo")
        target.write_bytes(compiled(catalog))
        written.append(target)
    return written


def compiled(catalog: Catalog) -> bytes:
    out = io.BytesIO()
    write_mo(out, catalog, use_fuzzy=False)
    return out.getvalue()


def check() -> list[str]:
    """What is wrong with the catalogs: texts missing, untranslated, or a .mo that is not its .po compiled."""
    template = messages(extract())
    found = []
    for language in LANGUAGES:
        path = po_path(language)
        catalog = _read(path, language)
        if catalog is None:
            found.append(f"{path.relative_to(ROOT)}: missing (run `python -m proxy.tools.catalogs update`)")
            continue
        have = messages(catalog)
        for key in template.keys() - have.keys():
            found.append(f"{path.relative_to(ROOT)}: {key[0]} is not in the catalog (run update)")
        # A text no longer in the sources is harmless (never looked up) and goes at the next update:
        # not a problem, so catalogs can be translated ahead of the code that uses a new text.
        for message in catalog:
            if message.id and (message.fuzzy or not _translated(message.string)):
                found.append(f"{path.relative_to(ROOT)}: {message.context} is not translated")
        for message in catalog:
            if message.id:
                found += [f"{path.relative_to(ROOT)}: {message.context}: {error}" for error in message.check(catalog)]
        mo = path.with_suffix(".mo")
        if not mo.exists():
            found.append(f"{mo.relative_to(ROOT)}: missing (run compile)")
        else:
            with mo.open("rb") as file:
                shipped = read_mo(file)
            current = read_mo(io.BytesIO(compiled(catalog)))
            if messages(shipped) != messages(current) or shipped.plural_forms != current.plural_forms:
                found.append(f"{mo.relative_to(ROOT)}: not the .po compiled (run compile)")
    return found


def _translated(string: object) -> bool:
    if isinstance(string, (tuple, list)):
        return all(string)
    return bool(string)


def _where(catalog: Catalog) -> dict[tuple[str | None, object], list[str]]:
    """The files each text is used in (line numbers are left out of the files: they would churn)."""
    return {(message.context, message.id): sorted({name for name, _ in message.locations})
            for message in catalog if message.id}


def _new(language: str | None) -> Catalog:
    name = f"{language} texts" if language else "Texts"
    header = (f"# {name} of errorproxy: its error pages and the default title and detail of its problems.\n"
              "# Edit the msgstr lines, then run `python -m proxy.tools.catalogs compile`.")
    return Catalog(locale=directory(language) if language else None, domain=DOMAIN, header_comment=header,
                   project=PROJECT, version="1", copyright_holder=PROJECT, msgid_bugs_address="",
                   last_translator="errorproxy", language_team="errorproxy", fuzzy=False)


def _read(path: Path, language: str | None) -> Catalog | None:
    if not path.exists():
        return None
    with path.open("rb") as file:
        return read_po(file, locale=directory(language) if language else None, domain=DOMAIN)


def _write(path: Path, catalog: Catalog) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        write_po(file, catalog, width=100, include_lineno=False, ignore_obsolete=True)


def main(argv: list[str] | None = None) -> int:
    command = (argv if argv is not None else sys.argv[1:])[:1]
    if command == ["update"]:
        for path in update():
            print(f"updated {path.relative_to(ROOT)}")
    elif command == ["compile"]:
        for path in compile_catalogs():
            print(f"wrote {path.relative_to(ROOT)}")
    elif command == ["check"]:
        problems = check()
        print("\n".join(problems) if problems else "catalogs: ok")
        return 1 if problems else 0
    else:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
