"""The one place the app reads the service commitment's settings (SPEC: every number is
a setting). Defaults come from ``warranty.Policy``; ``RMA_POLICY__<field>`` overrides."""

from __future__ import annotations

from flask import current_app

from warranty import Policy


def current_policy() -> Policy:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    cached = app.extensions.get("rma_policy")
    if cached is None:
        overrides = {k.lower(): v for k, v in (app.config.get("POLICY") or {}).items()}
        overrides.setdefault("timezone", app.config["TIMEZONE"])
        cached = Policy().with_overrides(**overrides)
        app.extensions["rma_policy"] = cached
    return cached
