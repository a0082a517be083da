"""Error pages for people and RFC 9457 problem documents for the API."""

from __future__ import annotations

from flask import Flask, jsonify, make_response, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

PROBLEM_TYPE = "about:blank"


def problem(status: int, title: str, detail: str = "", **extra):
    """A ``application/problem+json`` response (RFC 9457)."""
    body = {"type": extra.pop("type", PROBLEM_TYPE), "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body["instance"] = request.path
    body.update(extra)
    response = jsonify(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    return response


def wants_problem() -> bool:
    return request.path.startswith("/api/")


def init_app(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def _csrf(error: CSRFError):
        if wants_problem():
            return problem(400, "CSRF check failed", error.description)
        return render_template("errors/error.html", code=400, message=error.description), 400

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException):
        code = error.code or 500
        if wants_problem():
            response = problem(code, error.name, error.description or "")
        else:
            html = render_template("errors/error.html", code=code, message=error.description)
            response = make_response(html, code)
        for name, value in error.get_response().headers.items():
            if name in ("Retry-After", "Allow"):
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        app.logger.exception("unhandled error")
        if wants_problem():
            return problem(500, "Internal Server Error", "The error was logged.")
        message = InternalServerError.description
        return render_template("errors/error.html", code=500, message=message), 500
