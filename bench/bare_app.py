"""The baseline for bench/warranty_lookup.py: a bare Flask app with one JSON endpoint.

Same URL shape as the real API (``/api/v1/warranty/<serial>``) so the same load generator
script drives both; no database, no extensions, no hooks. Served by gunicorn as
``bare_app:create_app()`` (run with ``--pythonpath bench``).
"""

from __future__ import annotations

from flask import Flask, jsonify


def create_app() -> Flask:
    app = Flask(__name__)

    @app.get("/api/v1/warranty/<path:serial>")
    def warranty(serial: str):
        return jsonify({"serial": serial, "in_warranty": True, "days_left": 365})

    return app
