"""The Korean catalogue is complete, compiled and safe to format (issue 2 item 8).

A string marked for translation in the code or the templates but missing from
``ko/messages.po`` would show in English on a Korean page; ``make translations`` re-extracts,
and these tests say what is left to translate.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "modelport" / "translations"
KO_PO = TRANSLATIONS / "ko" / "LC_MESSAGES" / "messages.po"
KO_MO = TRANSLATIONS / "ko" / "LC_MESSAGES" / "messages.mo"
# The same keywords as `make translations` (pybabel's defaults plus the lazy ones).
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None}
PLACEHOLDER = re.compile(r"%\((\w+)\)[-#0 +]*\d*(?:\.\d+)?[sdifr]")


def _key(message_id: str | tuple[str, ...] | list[str]) -> str:
    # Plural messages are keyed by their singular; read_mo gives them as lists.
    return message_id if isinstance(message_id, str) else message_id[0]


@pytest.fixture(scope="module")
def extracted() -> dict[str, list[str]]:
    """Every msgid marked in modelport/ now, with where it is (as `pybabel extract` finds)."""
    with open(ROOT / "babel.cfg") as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    found: dict[str, list[str]] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=KEYWORDS
    ):
        found.setdefault(_key(message), []).append(f"{filename}:{lineno}")
    return found


@pytest.fixture(scope="module")
def korean() -> Catalog:
    with open(KO_PO, "rb") as fh:
        return read_po(fh, locale="ko")


def _translations(catalog: Catalog) -> dict[str, Message]:
    return {_key(m.id): m for m in catalog if m.id}


def test_extraction_finds_code_and_template_strings(extracted: dict[str, list[str]]) -> None:
    """The extraction itself covers templates, forms (lazy) and flash messages."""
    where = {loc.split(":")[0] for locs in extracted.values() for loc in locs}
    assert "modelport/templates/base.html" in where
    assert "modelport/auth/web/forms.py" in where
    assert "modelport/auth/passwords.py" in where
    assert "modelport/errors.py" in where
    assert "Keep me signed in on this device" in extracted  # a lazy_gettext form label
    assert "%(num)d user" in extracted  # an ngettext in a template


def test_every_extracted_string_has_a_korean_translation(
    extracted: dict[str, list[str]], korean: Catalog
) -> None:
    translations = _translations(korean)
    missing = {
        msgid: places
        for msgid, places in extracted.items()
        if msgid not in translations
        or translations[msgid].fuzzy
        or not all(s.strip() for s in _strings(translations[msgid]))
    }
    assert not missing, (
        "run `make translations` and translate these in ko/messages.po:\n"
        + "\n".join(f"  {msgid!r} ({', '.join(places)})" for msgid, places in missing.items())
    )


def test_catalogue_has_no_fuzzy_or_stale_entries(
    extracted: dict[str, list[str]], korean: Catalog
) -> None:
    assert not korean.fuzzy, "the catalogue header is marked fuzzy"
    assert not [m.id for m in korean if m.id and m.fuzzy]
    stale = set(_translations(korean)) - set(extracted)
    assert not stale, f"translations of strings no longer in the code: {sorted(stale)}"


def _strings(message: Message) -> list[str]:
    return [message.string] if isinstance(message.string, str) else list(message.string)


def test_compiled_catalogue_matches_the_po_file(korean: Catalog) -> None:
    with open(KO_MO, "rb") as fh:
        compiled = read_mo(fh)
    po = {_key(m.id): _strings(m) for m in korean if m.id}
    mo = {_key(m.id): _strings(m) for m in compiled if m.id}
    assert mo == po, (
        "ko/messages.mo is out of date: run `pybabel compile -d modelport/translations`"
    )


def test_placeholders_are_kept_in_every_translation(korean: Catalog) -> None:
    wrong = []
    for message in korean:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        expected = set(PLACEHOLDER.findall(ids[-1])) | set(PLACEHOLDER.findall(ids[0]))
        for text in _strings(message):
            if set(PLACEHOLDER.findall(text)) != expected:
                wrong.append((ids[0], text))
            # A bare % that is not a placeholder would break the %-formatting.
            if re.search(r"%(?!\(\w+\)|%)", text):
                wrong.append((ids[0], text))
    assert not wrong, wrong
    # Babel's own checks: python-format agreement and the number of plural forms.
    problems = [(m.id, [str(e) for e in errors]) for m, errors in korean.check()]
    assert not problems, problems


def test_korean_plural_forms_are_declared(korean: Catalog) -> None:
    assert korean.num_plurals == 1
    plurals = [m for m in korean if m.id and m.pluralizable]
    assert plurals and all(len(_strings(m)) == 1 for m in plurals)


def test_pages_use_the_compiled_korean(client) -> None:
    """The app loads this catalogue: a translated label appears on a Korean page."""
    html = client.get("/auth/login", headers={"Accept-Language": "ko"}).get_data(as_text=True)
    assert "이 기기에서 로그인 상태 유지" in html
