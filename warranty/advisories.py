"""Security advisories: the notice deadline and the public disclosure rule (R-A1..R-A3).

* R-A2: customers whose products are affected are notified within
  ``policy.advisory_notice_working_days`` (2) working days of the official patch, counted
  on the office calendar (China's holidays and make-up working days, R-I7). A year the
  calendar has no holiday data for is counted on plain weekdays; the calendar says so
  (``OfficeCalendar.missing_between``), this module does not guess.
* R-A3: a vulnerability the vendor found in its own products goes to its customers
  first and is published no earlier than ``policy.public_disclosure_delay_days`` (14)
  calendar days after the first notice's China date (on that day it may be published).
  An advisory the vendor did not find itself (a third party's disclosure, an upstream
  CVE) is public knowledge already: it may be published at once, before or after the
  customers' notices (which R-A2 still requires).
"""

from __future__ import annotations

from datetime import date, timedelta

from ._checks import require_date
from .calendar import OfficeCalendar
from .errors import FactError
from .policy import Policy

#: R-A1: what each severity means, shown to the advisory's author (English; the app
#: translates it).
SEVERITY_GUIDANCE: dict[str, str] = {
    "high": ("High: the vulnerability can be exploited remotely or without credentials, "
             "or lets an attacker bypass authentication, forge one-time passwords or read "
             "secrets (token seeds, keys). Customers should patch at once."),
    "medium": ("Medium: exploiting it needs credentials, access to the internal network "
               "or user interaction, or it degrades the service without exposing "
               "secrets. Customers should patch in their next maintenance window."),
    "low": ("Low: limited impact or hard to exploit (local access, unusual "
            "configuration, information of little value). Customers may patch with the "
            "next regular upgrade."),
}


def notify_due_on(patch_released_on: date, calendar: OfficeCalendar, policy: Policy) -> date:
    """R-A2: the last day to notify the affected customers: the official patch date plus
    ``policy.advisory_notice_working_days`` working days on the office calendar (R-I7).
    A patch on a Friday is due the Tuesday after; the days of a public holiday do not
    count and a make-up working day (调休) does.

    Raises :class:`FactError` unless ``patch_released_on`` is a date.
    """
    require_date("patch_released_on", patch_released_on, FactError)
    return calendar.add_working_days(patch_released_on, policy.advisory_notice_working_days)


def public_from_on(first_notified_on: date, policy: Policy) -> date:
    """R-A3: the first day a vendor-found vulnerability may be published: the China date
    of the first customer notice plus ``policy.public_disclosure_delay_days`` calendar
    days (2026-11-26 + 14 → 2026-12-10).

    Raises :class:`FactError` unless ``first_notified_on`` is a date.
    """
    require_date("first_notified_on", first_notified_on, FactError)
    return first_notified_on + timedelta(days=policy.public_disclosure_delay_days)


def may_publish(vendor_found: bool, first_notified_on: date | None, today: date,
                policy: Policy) -> tuple[bool, date | None]:
    """R-A3: may the advisory be published on ``today`` (China date)?

    Returns ``(True, None)`` when it may; ``(False, day)`` when it may from ``day`` (a
    vendor-found vulnerability before the 14 days after its first notice are over);
    ``(False, None)`` for a vendor-found vulnerability whose customers were not notified
    yet ("notify the customers first"). An advisory the vendor did not find may be
    published at once.

    Raises :class:`FactError` unless ``today`` (and ``first_notified_on`` when given) are
    dates.
    """
    require_date("today", today, FactError)
    if first_notified_on is not None:
        require_date("first_notified_on", first_notified_on, FactError)
    if not vendor_found:
        return True, None
    if first_notified_on is None:
        return False, None
    possible = public_from_on(first_notified_on, policy)
    if today >= possible:
        return True, None
    return False, possible


__all__ = ["SEVERITY_GUIDANCE", "may_publish", "notify_due_on", "public_from_on"]
