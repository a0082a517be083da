"""Configuration defaults. ``create_app`` layers: these → ``RMA_*`` environment → test mapping."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

DEFAULTS: dict = {
    # RMA_DATABASE_URL; when empty, an SQLite file in the instance folder (WAL, foreign keys on).
    "DATABASE_URL": "",
    # RMA_SECRET_KEY; when empty, generated once and kept in the instance folder.
    "SECRET_KEY": "",
    "TIMEZONE": "Asia/Shanghai",
    # An aware ISO instant that pins rma.clock (tests, demos); empty means the real clock.
    "FIXED_NOW": "",
    # Overrides of warranty.Policy defaults, e.g. RMA_POLICY__replacement_policy=fresh.
    "POLICY": {},
    "LANGUAGES": ["zh_CN", "en"],
    "BABEL_DEFAULT_LOCALE": "zh_CN",
    "BABEL_DEFAULT_TIMEZONE": "Asia/Shanghai",
    "WTF_CSRF_TIME_LIMIT": None,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_SECURE": False,
    "REMEMBER_COOKIE_HTTPONLY": True,
    "REMEMBER_COOKIE_SAMESITE": "Lax",
    # An RMA form may carry 3 photos of 5 MB for several items.
    "MAX_CONTENT_LENGTH": 40 * 1024 * 1024,
    "PHOTO_MAX_BYTES": 5 * 1024 * 1024,
    "PHOTOS_PER_ITEM": 3,
    "RMA_MAX_ITEMS": 500,
    # Printed on labels and e-mails.
    "VENDOR_NAME": "OTP Security Ltd. RMA Service Centre",
    "RETURN_ADDRESS": "RMA Service Centre\nNo. 1 Zhongguancun South Street, Haidian\n"
    "Beijing 100081, China\nTel. +86 10 8000 0000",
    # Links in e-mails point here.
    "PUBLIC_URL": "http://127.0.0.1:8000",
    "INVITATION_DAYS": 7,
    # Who gets the at-risk e-mails of the 72-hour clock; empty: every active warehouse user.
    "WAREHOUSE_LEAD_EMAIL": "",
    # Minutes between rma tick's rebuilds of the failure-analytics snapshots (issue 7).
    "ANALYTICS_SNAPSHOT_MINUTES": 15,
    # E-mail: "console" prints messages (the default of `make run`), "smtp" sends them.
    "MAIL_BACKEND": "console",
    "MAIL_FROM": "rma@example.com",
    "SMTP_HOST": "127.0.0.1",
    "SMTP_PORT": 25,
    "SMTP_USER": "",
    "SMTP_PASSWORD": "",
    "SMTP_TLS": "none",  # none | starttls | ssl
    "SMTP_TIMEOUT": 20,
    "RATELIMIT_ENABLED": True,
    "WARRANTY_RATE_LIMIT": "120/minute",
    "LOGIN_RATE_LIMIT": "20/minute",
    "REGISTRATION_RATE_LIMIT": "10/hour",
    "WARRANTY_BATCH_MAX": 50,
    # werkzeug's generate_password_hash method; tests use a cheaper one.
    "PASSWORD_HASH_METHOD": "scrypt",
    "PASSWORD_MIN_LENGTH": 10,
    "SQLALCHEMY_ENGINE_OPTIONS": {},
    # Issue 8: "text" (Flask's and gunicorn's lines) or "json" (one object per line, rma.logs).
    "LOG_FORMAT": "text",
    # Issue 8: proxy hops (nginx) whose X-Forwarded-For/-Proto are trusted; 0: none.
    "TRUSTED_PROXIES": 0,
}


def sqlite_url(instance_path: str) -> str:
    return "sqlite:///" + str(Path(instance_path) / "rma.sqlite3")


def instance_secret_key(instance_path: str) -> str:
    """The secret key kept in the instance folder, created on first use (mode 0600)."""
    path = Path(instance_path) / "secret_key"
    if path.exists():
        key = path.read_text().strip()
        if key:
            return key
    key = secrets.token_urlsafe(48)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"secret_key.{os.getpid()}.{secrets.token_hex(4)}")
    tmp.write_text(key)
    tmp.chmod(0o600)
    try:
        # link() fails when another process won the race: then its key is the key.
        os.link(tmp, path)
    except FileExistsError:
        key = path.read_text().strip()
    finally:
        tmp.unlink()
    return key
