"""RMA and warranty service: the Flask application factory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask

_PACKAGE = Path(__file__).resolve().parent


def _resource_dir(name: str) -> str:
    """``templates``/``static``/``migrations``: inside the package when installed from the
    wheel, at the repository root in a checkout (STYLE habit 3)."""
    installed = _PACKAGE / name
    if installed.is_dir():
        return str(installed)
    return str(_PACKAGE.parent / name)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: defaults → ``RMA_*`` environment → ``test_config``."""
    app = Flask(
        __name__,
        template_folder=_resource_dir("templates"),
        static_folder=_resource_dir("static"),
        instance_path=os.environ.get("RMA_INSTANCE_PATH") or None,
        instance_relative_config=True,
    )
    from rma.config import DEFAULTS, instance_secret_key, sqlite_url

    app.config.from_mapping(DEFAULTS)
    app.config.from_prefixed_env("RMA")
    for key in ("SECRET_KEY", "DATABASE_URL"):
        # from_prefixed_env JSON-decodes values; these must stay the text that was typed.
        if f"RMA_{key}" in os.environ:
            app.config[key] = os.environ[f"RMA_{key}"]
    if test_config:
        app.config.from_mapping(test_config)

    os.makedirs(app.instance_path, exist_ok=True)
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = instance_secret_key(app.instance_path)
    app.config["SQLALCHEMY_DATABASE_URI"] = app.config["DATABASE_URL"] or sqlite_url(
        app.instance_path
    )
    app.config["BABEL_DEFAULT_TIMEZONE"] = app.config["TIMEZONE"]

    if app.config["TRUSTED_PROXIES"]:
        # Behind nginx (deploy/): the client's address and scheme from its X-Forwarded-*
        # headers, trusting that many proxy hops (the rate limits count per client).
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = int(app.config["TRUSTED_PROXIES"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)

    from rma import db_setup, errors, i18n, logs, ratelimit, security, templating
    from rma.extensions import csrf, db, login_manager, migrate

    db_setup.configure_engine_options(app)
    db.init_app(app)
    db_setup.install_sqlite_pragmas(app)
    migrate.init_app(app, db, directory=_resource_dir("migrations"), render_as_batch=True)
    csrf.init_app(app)
    ratelimit.init_app(app)
    i18n.init_app(app)
    security.init_app(app)
    logs.init_app(app)  # issue 8: LOG_FORMAT; its access line wraps the security headers
    templating.init_app(app)
    login_manager.init_app(app)

    from rma.views import accounts, admin, api, api_warehouse, auth, labels, portal, public
    from rma.views import api_finance as finance_api
    from rma.views import warehouse as warehouse_pages

    app.register_blueprint(public.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(portal.bp)
    app.register_blueprint(accounts.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(labels.bp)
    app.register_blueprint(api_warehouse.bp)
    app.register_blueprint(finance_api.bp)
    app.register_blueprint(warehouse_pages.bp)
    from rma.views import finance as finance_pages  # issue 5: staff finance pages
    app.register_blueprint(finance_pages.bp)
    from rma.views import api_incidents, portal_incidents  # issue 6: portal + API (helper E)
    app.register_blueprint(portal_incidents.bp)
    app.register_blueprint(api_incidents.bp)
    csrf.exempt(api_incidents.bp)
    from rma.views import admin_incidents, support  # issue 6: staff incident pages
    app.register_blueprint(support.bp)
    app.register_blueprint(admin_incidents.bp)
    from rma.views import advisories, portal_advisories, public_advisories  # issue 7 (P2)
    app.register_blueprint(advisories.bp)
    app.register_blueprint(public_advisories.bp)
    app.register_blueprint(portal_advisories.bp)
    from rma.views import api_advisories  # issue 7: advisory API (P1)
    app.register_blueprint(api_advisories.bp)
    csrf.exempt(api_advisories.bp)
    from rma.views import portal_reports, service_reports  # issue 7: R-R4 (helper R)
    app.register_blueprint(service_reports.bp)
    app.register_blueprint(portal_reports.bp)
    from rma.views import analytics as analytics_pages  # issue 7 (S): failure analytics
    app.register_blueprint(analytics_pages.bp)
    from rma.views import health  # issue 8: /healthz, /readyz (no session, log-in or limit)
    health.init_app(app)
    csrf.exempt(api.bp)
    csrf.exempt(api_warehouse.bp)
    csrf.exempt(finance_api.bp)
    from rma.views.api_common import refuse_nul  # issue 8: no U+0000 reaches PostgreSQL

    app.before_request(refuse_nul)
    errors.init_app(app)

    from rma import cli

    cli.init_app(app)
    return app
