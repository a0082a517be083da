"""Exceptions of the warranty core.

Every error raised on purpose by :mod:`warranty` derives from :class:`WarrantyError`, so a
caller can catch the whole family in one place. Errors about bad input also derive from
``ValueError``.
"""

from __future__ import annotations


class WarrantyError(Exception):
    """Base class of every error the warranty core raises on purpose."""


class PolicyError(WarrantyError, ValueError):
    """A setting (a ``Policy`` field, a model's life, a month count) is not usable."""


class SerialError(WarrantyError, ValueError):
    """A serial number was refused (D-8).

    ``raw`` holds exactly what was read, so the caller can show it back to the user.
    """

    def __init__(self, message: str, raw: object = None) -> None:
        super().__init__(message)
        self.raw = raw

    def __reduce__(self):
        return (type(self), (str(self), self.raw))


class UnknownCauseError(WarrantyError, ValueError):
    """A fault cause is not one of the causes of D-4."""


class NaiveDatetimeError(WarrantyError, ValueError):
    """A datetime without a time zone was given where an instant is needed."""


class ContractError(WarrantyError, ValueError):
    """A contract term is inconsistent (ends before it starts, unknown kind, ...)."""


class FactError(WarrantyError, ValueError):
    """A fact handed to the core is not usable (a datetime where a date is due, a
    replacement chain that loops)."""
