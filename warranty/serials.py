"""Serial numbers as D-8 defines them.

Serials are compared after trimming surrounding whitespace and upper-casing; a valid
serial is ``serial_min_length`` to ``serial_max_length`` (4 to 32 by default)
characters of A-Z, 0-9 and '-'. :func:`normalize_serial` runs once per scanned or
imported row (a million times in a bulk import), so it does the least work it can.
"""

from __future__ import annotations

import re

from .errors import SerialError
from .policy import DEFAULT_POLICY, Policy

# Checked before upper-casing, and ASCII only: str.upper() turns some non-ASCII letters
# into ASCII ones ('ß' → 'SS', 'ﬁ' → 'FI'), which must not sneak a serial through.
_SERIAL_CHARS = re.compile(r"[A-Za-z0-9-]+")
_SHOWN_MAX = 40  # characters of a refused value quoted back in the message


def _accepts(text: str, policy: Policy) -> bool:
    return (
        policy.serial_min_length <= len(text) <= policy.serial_max_length
        and _SERIAL_CHARS.fullmatch(text) is not None
    )


def _refusal(raw: object, text: str, policy: Policy) -> SerialError:
    rule = (
        f"use {policy.serial_min_length} to {policy.serial_max_length} characters A-Z, 0-9 and '-'"
    )
    if not text:
        return SerialError(f"serial is empty: {rule}", raw)
    shown = text if len(text) <= _SHOWN_MAX else text[:_SHOWN_MAX] + "..."
    return SerialError(f"serial {shown!r} is not valid: {rule}", raw)


def normalize_serial(raw: str, policy: Policy = DEFAULT_POLICY) -> str:
    """Return ``raw`` as the canonical serial of D-8: whitespace trimmed, upper-cased.

    Raises :class:`SerialError` (``.raw`` is ``raw``) when the trimmed value is empty,
    has the wrong length, or holds a character other than A-Z, a-z, 0-9 and '-'; the
    message quotes the trimmed value, e.g. ``serial 'ab#12' is not valid: use 4 to 32
    characters A-Z, 0-9 and '-'``. ``None`` counts as empty; any other non-``str``
    value (bytes, a number) is refused as not text.
    """
    if not isinstance(raw, str):
        if raw is None:
            raise _refusal(raw, "", policy)
        raise SerialError(f"serial must be text, not {type(raw).__name__}", raw)
    text = raw.strip()
    if not _accepts(text, policy):
        raise _refusal(raw, text, policy)
    return text.upper()


def is_valid_serial(raw: object, policy: Policy = DEFAULT_POLICY) -> bool:
    """Return whether :func:`normalize_serial` would accept ``raw`` (D-8)."""
    return isinstance(raw, str) and _accepts(raw.strip(), policy)
