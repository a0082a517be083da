"""The zh_CN catalogue is complete and compiled; pages speak Chinese by default, English on request.

When a catalogue test fails after you added or changed a string::

    scripts/i18n.sh extract && scripts/i18n.sh update
    # translate the new entries in rma/translations/zh_Hans_CN/LC_MESSAGES/messages.po
    scripts/i18n.sh compile
"""

from __future__ import annotations

import io
import re
from functools import cache
from pathlib import Path

import pytest
from babel import Locale
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po, write_po

from tests.conftest import TEST_PASSWORD

ROOT = Path(__file__).resolve().parents[2]
TRANSLATIONS = ROOT / "rma" / "translations"
# Flask-Babel looks the catalogue up by str(Locale.parse("zh_CN")), which is "zh_Hans_CN".
PO = TRANSLATIONS / "zh_Hans_CN" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")
# The keywords scripts/i18n.sh passes to pybabel extract (-k _l -k lazy_gettext).
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None}
HOW_TO_FIX = ("run scripts/i18n.sh extract && scripts/i18n.sh update, translate in "
              f"{PO.relative_to(ROOT)}, then scripts/i18n.sh compile")
# %(name)s, %d, %.2f, %% ... (printf-style, as gettext's python-format).
PLACEHOLDER = re.compile(
    r"%(?:\([^)]*\))?[#0 +-]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[diouxXeEfFgGcrsa%]")


def _forms(value) -> tuple[str, ...]:
    """A message id or string as a tuple (plural messages have several forms)."""
    if isinstance(value, (tuple, list)):
        return tuple(value)
    return (value or "",)


def _placeholders(value) -> set[str]:
    return {p for form in _forms(value) for p in PLACEHOLDER.findall(form)}


@cache
def _translations() -> Catalog:
    with PO.open("rb") as f:
        return read_po(f, locale="zh_CN")


def _zh(msgid: str) -> str:
    message = _translations().get(msgid)
    assert message is not None and message.string, f"{msgid!r} has no zh_CN translation"
    return message.string


@pytest.fixture(scope="module")
def source_catalogue(tmp_path_factory) -> Catalog:
    """The messages in the source now, extracted as scripts/i18n.sh extract does."""
    with (ROOT / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f, filename=str(ROOT / "babel.cfg"))
    catalog = Catalog(project="RMA service")
    for filename, lineno, message, comments, context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=KEYWORDS, comment_tags=("TRANSLATORS:",)
    ):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments,
                    context=context)
    pot = tmp_path_factory.mktemp("i18n") / "messages.pot"
    with pot.open("wb") as f:
        write_po(f, catalog)
    with pot.open("rb") as f:
        return read_po(f)


# -- the catalogue ----------------------------------------------------------------------
def test_extraction_finds_python_and_template_strings(source_catalogue):
    files = {path for message in source_catalogue for path, _ in message.locations}
    assert any(path.startswith("rma/") for path in files), files
    assert any(path.startswith("templates/") for path in files), files
    assert "Warranty check" in source_catalogue  # templates, _()
    assert "Serial numbers" in source_catalogue  # rma/forms.py, lazy_gettext as _l
    assert "You are logged out." in source_catalogue  # rma/views, gettext as _


def test_every_source_message_has_a_zh_cn_translation(source_catalogue):
    translations = _translations()
    assert not translations.fuzzy, f"the header of {PO.name} is marked fuzzy: {HOW_TO_FIX}"
    missing, fuzzy = [], []
    for message in source_catalogue:
        if not message.id:
            continue
        translated = translations.get(message.id, context=message.context)
        if translated is None or not all(form.strip() for form in _forms(translated.string)):
            missing.append(message.id)
        elif translated.fuzzy:
            fuzzy.append(message.id)
    assert not missing, f"{len(missing)} message(s) not translated ({HOW_TO_FIX}):\n" + (
        "\n".join(f"  {msgid!r}" for msgid in missing))
    assert not fuzzy, f"{len(fuzzy)} fuzzy translation(s) to check ({HOW_TO_FIX}):\n" + (
        "\n".join(f"  {msgid!r}" for msgid in fuzzy))


def test_translations_keep_the_placeholders():
    wrong = []
    for message in _translations():
        if not message.id or not message.string:
            continue
        expected = _placeholders(message.id)
        for form in _forms(message.string):
            if _placeholders(form) != expected:
                wrong.append(f"  {message.id!r}: {sorted(expected)} but {form!r}")
    assert not wrong, "translations whose placeholders differ from the msgid:\n" + (
        "\n".join(wrong))


def test_catalogue_passes_babels_own_checks():
    problems = [f"  {message.id!r}: {'; '.join(map(str, errors))}"
                for message, errors in _translations().check()]
    assert not problems, "\n".join(problems)


def test_catalogue_sits_where_flask_babel_looks(app):
    for code in app.config["LANGUAGES"]:
        if code != "en":  # English is the source language
            folder = TRANSLATIONS / str(Locale.parse(code)) / "LC_MESSAGES"
            assert (folder / "messages.mo").is_file(), f"{code}: no {folder.relative_to(ROOT)}"


def _messages(catalog) -> dict:
    def frozen(value):
        return tuple(value) if isinstance(value, list | tuple) else value

    return {frozen(m.id): frozen(m.string) for m in catalog if m.id}


def test_compiled_mo_matches_the_po():
    buffer = io.BytesIO()
    write_mo(buffer, _translations())
    buffer.seek(0)
    expected = _messages(read_mo(buffer))
    with MO.open("rb") as f:
        committed = _messages(read_mo(f))
    assert committed == expected, f"{MO.relative_to(ROOT)} is stale: run scripts/i18n.sh compile"


# -- pages ------------------------------------------------------------------------------
def _page(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def _assert_chinese(html: str) -> None:
    assert _zh("Warranty check") in html
    assert "Warranty check" not in html


def _assert_english(html: str) -> None:
    assert "Warranty check" in html
    assert _zh("Warranty check") not in html


def test_chinese_is_the_default(client):
    html = _page(client.get("/"))
    _assert_chinese(html)
    assert _zh("Check the warranty of a token, licence or server by its serial number.") in html


@pytest.mark.parametrize(("header", "lang", "other"), [
    (None, "zh-CN", "English"), ("zh-CN,zh;q=0.9", "zh-CN", "English"),
    ("en", "en", "中文"),
])
def test_html_lang_and_language_switch_follow_the_locale(client, header, lang, other):
    headers = {"Accept-Language": header} if header else {}
    html = _page(client.get("/", headers=headers))
    assert f'<html lang="{lang}">' in html
    buttons = re.findall(r'<button type="submit" name="lang" value="[^"]*" class="link">([^<]*)<',
                         html)
    assert buttons == [other]  # the switch offers only the other language


@pytest.mark.parametrize("header", ["zh-CN,zh;q=0.9,en;q=0.8", "zh", "fr-FR,fr;q=0.9"])
def test_chinese_or_unsupported_browser_language_gives_chinese(client, header):
    _assert_chinese(_page(client.get("/", headers={"Accept-Language": header})))


@pytest.mark.parametrize("header", ["en", "en-US,en;q=0.9", "en-GB,en;q=0.9,zh-CN;q=0.5"])
def test_english_browser_gets_english(client, header):
    html = _page(client.get("/", headers={"Accept-Language": header}))
    _assert_english(html)
    assert "Check the warranty of a token, licence or server by its serial number." in html


def test_language_switch_keeps_the_choice_for_the_session(client):
    response = client.post("/language", data={"lang": "en", "next": "/warranty"})
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/warranty")
    _assert_english(_page(client.get("/warranty")))
    _assert_english(_page(client.get("/")))
    # The session choice beats the browser's preference.
    _assert_english(_page(client.get("/", headers={"Accept-Language": "zh-CN"})))
    client.post("/language", data={"lang": "zh_CN", "next": "/"})
    _assert_chinese(_page(client.get("/", headers={"Accept-Language": "en"})))


def test_unknown_language_is_ignored(client):
    client.post("/language", data={"lang": "fr", "next": "/"})
    _assert_chinese(_page(client.get("/")))


def test_form_labels_and_messages_are_translated(client):
    html = _page(client.get("/login"))
    assert _zh("E-mail") in html and _zh("Password") in html  # lazy_gettext labels
    html = _page(client.post("/login", data={"email": "nobody@example.com",
                                             "password": "not-the-password"}))
    assert _zh("E-mail or password is not right.") in html
    html = _page(client.post("/warranty", data={"serials": "\n".join(["X"] * 51)}))
    assert _zh("At most %(n)d serials at a time.") % {"n": 50} in html


def _log_in(client, make_user, language: str) -> None:
    email = f"admin-{language}@example.com"
    make_user(email, "admin", language=language)
    response = client.post("/login", data={"email": email, "password": TEST_PASSWORD})
    assert response.status_code == 302


def test_user_who_prefers_chinese_sees_chinese(client, make_user):
    _log_in(client, make_user, "zh_CN")
    html = _page(client.get("/admin/", headers={"Accept-Language": "en"}))
    _assert_chinese(html)
    assert _zh("Administration") in html and _zh("Product models") in html


def test_user_who_prefers_english_sees_english(client, make_user):
    _log_in(client, make_user, "en")
    html = _page(client.get("/admin/"))
    _assert_english(html)
    assert "Administration" in html and "Product models" in html
    _assert_english(_page(client.get("/")))
