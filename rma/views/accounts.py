"""Registration applications, their review by staff, invitations and colleagues (issue 3)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("accounts", __name__)
