"""Chinese (default) and English UI through Flask-Babel."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, current_app, has_request_context, request, session
from flask_login import current_user

from rma.extensions import babel

LANGUAGE_NAMES = {"zh_CN": "中文", "en": "English"}


def select_locale() -> str:
    """Explicit choice in this session, then the user's preference, then the browser's
    Accept-Language; Chinese when nothing says otherwise."""
    languages = current_app.config["LANGUAGES"]
    if not has_request_context():
        # The CLI speaks English; e-mails and documents choose their reader's language
        # explicitly (force_locale), so nothing for a customer depends on this.
        return "en"
    chosen = session.get("lang")
    if chosen in languages:
        return chosen
    if current_user and getattr(current_user, "is_authenticated", False):
        if current_user.language in languages:
            return current_user.language
    best = request.accept_languages.best_match(["zh_CN", "zh", "en"]) if request else None
    if best in ("zh", "zh_CN"):
        return "zh_CN"
    if best == "en":
        return "en"
    return current_app.config["BABEL_DEFAULT_LOCALE"]


def init_app(app: Flask) -> None:
    translations = Path(__file__).resolve().parent / "translations"
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(translations)
    babel.init_app(app, locale_selector=select_locale)

    @app.context_processor
    def _languages():
        return {"language_names": LANGUAGE_NAMES}
