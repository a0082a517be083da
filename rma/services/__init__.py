"""Use cases: the only code that commits. Each writes its audit event in the same
transaction (R-R4) and commits once; an error rolls back (STYLE habit 4)."""

from __future__ import annotations


class ServiceError(Exception):
    """A refusal a user can understand. ``field`` names the form field or CSV column."""

    status = 400

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class ValidationError(ServiceError):
    status = 422


class NotFoundError(ServiceError):
    status = 404


class ConflictError(ServiceError):
    status = 409


class ForbiddenError(ServiceError):
    status = 403
