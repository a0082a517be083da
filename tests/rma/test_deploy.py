"""Issue 8: the sample deployment in ``deploy/`` is well-formed and agrees with the app."""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path

import pytest

from rma.config import DEFAULTS

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _unit(name: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=True, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string((DEPLOY / name).read_text(encoding="utf-8"), source=name)
    assert parser.sections() == ["Unit", "Service", "Install"]
    return parser


def _exec_start(unit: configparser.RawConfigParser) -> list[str]:
    return shlex.split(unit["Service"]["ExecStart"].replace("\\\n", " "))


def test_web_unit_runs_gunicorn_on_the_instance_port():
    unit = _unit("rma-web@.service")
    assert unit["Service"]["EnvironmentFile"] == "/etc/rma/rma.env"
    argv = _exec_start(unit)
    assert argv[0].endswith("/gunicorn")
    assert "--no-control-socket" in argv
    assert argv[argv.index("--bind") + 1] == "127.0.0.1:%i"
    assert argv[argv.index("--logger-class") + 1] == "rma.gunicorn_logger.JsonLogger"
    assert argv[-1] == "rma:create_app()"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_tick_unit_runs_the_loop():
    unit = _unit("rma-tick.service")
    assert unit["Service"]["EnvironmentFile"] == "/etc/rma/rma.env"
    argv = _exec_start(unit)
    assert argv[0].endswith("/rma") and argv[1:3] == ["tick", "--loop"]


def test_env_example_names_only_known_settings():
    names = [line.split("=", 1)[0] for line in
             (DEPLOY / "rma.env.example").read_text(encoding="utf-8").splitlines()
             if line and not line.startswith("#")]
    assert "RMA_SECRET_KEY" in names and "RMA_DATABASE_URL" in names
    for name in names:
        assert name == "RMA_INSTANCE_PATH" or name[len("RMA_"):] in DEFAULTS, name


def test_nginx_site_proxies_two_instances_with_the_apps_upload_limit():
    conf = (DEPLOY / "nginx-rma.conf").read_text(encoding="utf-8")
    assert conf.count("{") == conf.count("}")
    upstream = re.search(r"upstream rma_web \{(.*?)\}", conf, re.S).group(1)
    ports = re.findall(r"server 127\.0\.0\.1:(\d+)", upstream)
    assert len(ports) == 2 and len(set(ports)) == 2
    size = re.search(r"client_max_body_size (\d+)m;", conf).group(1)
    assert int(size) * 1024 * 1024 == DEFAULTS["MAX_CONTENT_LENGTH"]
    assert "location = /readyz" in conf
    for header in ("X-Forwarded-For", "X-Forwarded-Proto", "X-Request-ID", "Host"):
        assert f"proxy_set_header {header} " in conf


@pytest.fixture
def app_config() -> dict:
    return {"TRUSTED_PROXIES": 1}


def test_behind_one_trusted_proxy_the_client_address_is_the_forwarded_one(app):
    from flask import request

    @app.get("/test-remote")
    def remote():
        return f"{request.remote_addr} {request.scheme}"

    response = app.test_client().get("/test-remote", headers={
        "X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https"},
        environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert response.get_data(as_text=True) == "198.51.100.7 https"
