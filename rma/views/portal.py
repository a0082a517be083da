"""The customer portal: RMA forms, labels and tracking (issue 3). Owned by the RMA work."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("portal", __name__, url_prefix="/portal")
