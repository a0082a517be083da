"""The public security advisory pages (issue 7; R-A1, R-A3).

Blueprint ``public_advisories``: ``/advisories`` lists the published advisories, newest
first, and ``/advisories/<number>`` shows one. Anyone may open them; a draft or an
advisory only notified to its customers answers 404 like an unknown number. No customer
data is shown.

The template helpers here (severity words, references as links) serve the staff and
portal advisory pages too.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, abort, render_template

from rma.forms_advisories import SEVERITY_WORDS
from rma.services import advisories as service

bp = Blueprint("public_advisories", __name__)

#: Only these schemes become links; any other reference is shown as text.
LINK_SCHEMES = ("http", "https")


def reference_lines(text: str | None) -> list[tuple[str, str | None]]:
    """An advisory's references, one per line, as (text, link): the link is the line
    itself when it is an http(s) address with a host, else ``None`` (shown as text,
    never as a link: ``javascript:`` and the like stay inert)."""
    lines = []
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line:
            continue
        href = None
        if not any(ch.isspace() for ch in line):
            parts = urlsplit(line)
            if parts.scheme.lower() in LINK_SCHEMES and parts.netloc:
                href = line
        lines.append((line, href))
    return lines


@bp.app_template_global()
def advisory_references(text: str | None) -> list[tuple[str, str | None]]:
    return reference_lines(text)


@bp.app_template_global()
def severity_word(value) -> str:
    """A severity code (R-A1) in the reader's words."""
    code = str(getattr(value, "value", value) or "")
    return str(SEVERITY_WORDS.get(code, code))


@bp.app_template_global()
def severity_code(value) -> str:
    """A severity's code ("high", "medium", "low") for CSS classes and tests."""
    return str(getattr(value, "value", value) or "")


@bp.get("/advisories")
def advisory_list():
    return render_template("public/advisories.html", advisories=service.public_advisories())


@bp.get("/advisories/<number>")
def advisory_detail(number: str):
    advisory = service.get_public(number.strip().upper())
    if advisory is None:
        abort(404)
    return render_template("public/advisory.html", advisory=advisory)
