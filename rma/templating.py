"""Template helpers: labels for domain codes, dates in China time."""

from __future__ import annotations

from flask import Flask
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l

from rma import clock
from rma.forms import KINDS, ROLES

KIND_LABELS = {choice.value: choice.label for choice in KINDS}
ROLE_LABELS = {choice.value: choice.label for choice in ROLES}

BASIS_LABELS = {
    "ship": _l("from the ship date"),
    "activation": _l("from the activation date"),
    "acceptance": _l("from the day after acceptance"),
    "ship_fallback": _l("from the ship date (the chosen date is not known yet)"),
    "replacement_inherit": _l("replacement: keeps the original's warranty"),
    "replacement_fresh": _l("replacement: a full new warranty"),
    "replacement_inherit_min_days": _l("replacement: original's warranty, at least 90 days"),
    "not_shipped": _l("not shipped yet"),
}


def init_app(app: Flask) -> None:
    @app.context_processor
    def _helpers():
        return {
            "get_locale": get_locale,
            "basis_label": lambda code: BASIS_LABELS.get(code, code),
            "kind_label": lambda code: KIND_LABELS.get(str(code), code),
            "role_label": lambda code: ROLE_LABELS.get(str(code), code),
            "today": clock.today,
        }

    @app.template_filter("local")
    def _local(moment, fmt: str = "%Y-%m-%d %H:%M"):
        if moment is None:
            return ""
        return clock.to_local(moment).strftime(fmt)
