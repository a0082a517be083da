"""The life of one RMA item: which action is allowed in which state (R-R3, D-1..D-3, D-6).

An item is submitted with its RMA (D-1). Support confirms the fault remotely (the
replacement may ship before the faulty unit is back: advance replacement, D-1/D-2) or
asks for the unit; a received unit is inspected and confirmed. A free replacement (or a
``return_unit`` outcome, D-4) is then ``confirmed`` and ships; a paid one waits for
payment until finance releases it (D-3). A manager may override free ↔ paid (D-6).
After delivery the item closes once the faulty unit is back (or nothing was to come
back). ``closed``, ``cancelled`` and ``rejected`` are final.

The state values equal ``rma.models.ItemStatus``; this module only judges, it stores
nothing and reads no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .decision import Outcome
from .errors import FactError, WarrantyError


class ItemState(StrEnum):
    """The state of an RMA item (stored as ``rma.models.RmaItem.status``)."""

    SUBMITTED = "submitted"
    AWAITING_UNIT = "awaiting_unit"
    RECEIVED = "received"
    CONFIRMED = "confirmed"
    WAITING_PAYMENT = "waiting_payment"
    RELEASED = "released"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"

    @property
    def is_final(self) -> bool:
        """True for ``closed``, ``cancelled`` and ``rejected``: nothing is allowed there."""
        return self in FINAL_STATES


#: States in which no action is allowed.
FINAL_STATES = frozenset({ItemState.CLOSED, ItemState.CANCELLED, ItemState.REJECTED})


class Action(StrEnum):
    """Something a person does to an RMA item."""

    REQUEST_UNIT = "request_unit"  # D-1: ask for the unit back before deciding
    CONFIRM_REMOTE = "confirm_remote"  # D-1: fault confirmed remotely by an engineer
    RECEIVE = "receive"  # the faulty unit arrived at the warehouse
    CONFIRM = "confirm"  # fault confirmed on inspection of the received unit
    OVERRIDE = "override"  # D-6: a manager turns free into paid or paid into free
    RELEASE = "release"  # D-3: paid, or released on credit by finance
    DECLINE = "decline"  # the customer declined the quote: the unit goes back (issue 5)
    SCRAP = "scrap"  # the customer declined and asked the vendor to scrap the unit
    SHIP = "ship"  # the replacement (or the returned unit) leaves
    DELIVER = "deliver"  # it arrived on site
    CLOSE = "close"
    CANCEL = "cancel"
    REJECT = "reject"


#: Actions that need an outcome (``apply(..., outcome=...)`` or ``ItemFacts.outcome``).
OUTCOME_ACTIONS = frozenset({Action.CONFIRM_REMOTE, Action.CONFIRM, Action.OVERRIDE})

#: States in which a remote-confirmed item may still receive its faulty unit (D-1/D-2).
_LATE_RECEIVE_STATES = frozenset(
    {
        ItemState.CONFIRMED,
        ItemState.WAITING_PAYMENT,
        ItemState.RELEASED,
        ItemState.SHIPPED,
        ItemState.DELIVERED,
    }
)


class IllegalTransition(WarrantyError):
    """An action is not allowed in the item's current state.

    ``state`` and ``action`` say which; ``reason`` (possibly empty) says why when the
    state alone does not. ``str()`` reads "cannot <action> an item that is <state>",
    followed by ": <reason>" when there is one.
    """

    def __init__(self, state: ItemState | str, action: Action | str, reason: str = "") -> None:
        self.state = state
        self.action = action
        self.reason = reason
        message = f"cannot {action} an item that is {state}"
        super().__init__(f"{message}: {reason}" if reason else message)

    def __reduce__(self):
        return (type(self), (self.state, self.action, self.reason))


@dataclass(frozen=True)
class ItemFacts:
    """What the lifecycle needs to know about an item.

    ``outcome`` is the current decision (None before one is made); ``unit_received`` is
    True once the faulty unit is at the warehouse; ``remote`` is True when the fault was
    confirmed remotely (advance replacement, D-1).
    """

    state: ItemState
    outcome: Outcome | None = None
    unit_received: bool = False
    remote: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", _as_state(self.state))
        if self.outcome is not None:
            object.__setattr__(self, "outcome", _as_outcome(self.outcome))


def _as_state(value: object) -> ItemState:
    try:
        return ItemState(value)
    except ValueError:
        raise FactError(
            f"unknown item state {value!r}; use one of {', '.join(s.value for s in ItemState)}"
        ) from None


def _as_action(value: object) -> Action:
    try:
        return Action(value)
    except ValueError:
        raise FactError(
            f"unknown action {value!r}; use one of {', '.join(a.value for a in Action)}"
        ) from None


def _as_outcome(value: object) -> Outcome:
    try:
        return Outcome(value)
    except ValueError:
        raise FactError(
            f"unknown outcome {value!r}; use one of {', '.join(o.value for o in Outcome)}"
        ) from None


# -- the table ------------------------------------------------------------------------
#
# _next(facts, action, outcome) returns the next state or raises IllegalTransition. Both
# apply() and allowed_actions() go through it, so they cannot disagree.


def _confirm_remote(facts: ItemFacts, outcome: Outcome) -> ItemState:
    if outcome is Outcome.RETURN_UNIT:
        raise IllegalTransition(
            facts.state,
            Action.CONFIRM_REMOTE,
            "a remote confirmation needs a replacement; with no fault there is no unit "
            "here to return (ask for the unit instead)",
        )
    return ItemState.CONFIRMED if outcome is Outcome.FREE else ItemState.WAITING_PAYMENT


def _override(facts: ItemFacts, outcome: Outcome) -> ItemState:
    state = facts.state
    if outcome is Outcome.RETURN_UNIT:
        raise IllegalTransition(
            state, Action.OVERRIDE, "an override turns free into paid or paid into free (D-6)"
        )
    if facts.outcome is outcome:
        raise IllegalTransition(state, Action.OVERRIDE, f"the decision is already {outcome}")
    if state is ItemState.WAITING_PAYMENT and outcome is Outcome.PAID:
        raise IllegalTransition(state, Action.OVERRIDE, "the decision is already paid")
    return ItemState.CONFIRMED if outcome is Outcome.FREE else ItemState.WAITING_PAYMENT


def _receive(facts: ItemFacts) -> ItemState:
    state = facts.state
    if facts.unit_received or state is ItemState.RECEIVED:
        raise IllegalTransition(state, Action.RECEIVE, "the unit was already received")
    if state in (ItemState.SUBMITTED, ItemState.AWAITING_UNIT):
        return ItemState.RECEIVED
    if state in _LATE_RECEIVE_STATES and facts.remote:
        return state  # advance replacement: the faulty unit comes back later (D-1/D-2)
    raise IllegalTransition(state, Action.RECEIVE)


def _decline(facts: ItemFacts) -> ItemState:
    # The faulty unit goes back to the customer like a no-fault-found one (the caller
    # records the outcome return_unit); when it never came in, nothing moves and the
    # item closes.
    return ItemState.CONFIRMED if facts.unit_received else ItemState.CLOSED


def _scrap(facts: ItemFacts) -> ItemState:
    if not facts.unit_received:
        raise IllegalTransition(
            facts.state, Action.SCRAP, "the faulty unit is not at the warehouse to scrap"
        )
    return ItemState.CLOSED


def _close(facts: ItemFacts) -> ItemState:
    if facts.unit_received or facts.outcome is Outcome.RETURN_UNIT:
        return ItemState.CLOSED
    raise IllegalTransition(
        facts.state, Action.CLOSE, "the faulty unit has not come back yet (D-2)"
    )


_SIMPLE: dict[tuple[ItemState, Action], ItemState] = {
    (ItemState.SUBMITTED, Action.REQUEST_UNIT): ItemState.AWAITING_UNIT,
    (ItemState.SUBMITTED, Action.REJECT): ItemState.REJECTED,
    (ItemState.SUBMITTED, Action.CANCEL): ItemState.CANCELLED,
    (ItemState.AWAITING_UNIT, Action.REJECT): ItemState.REJECTED,
    (ItemState.AWAITING_UNIT, Action.CANCEL): ItemState.CANCELLED,
    (ItemState.RECEIVED, Action.REJECT): ItemState.REJECTED,
    (ItemState.CONFIRMED, Action.SHIP): ItemState.SHIPPED,
    (ItemState.CONFIRMED, Action.CANCEL): ItemState.CANCELLED,
    (ItemState.WAITING_PAYMENT, Action.RELEASE): ItemState.RELEASED,
    (ItemState.WAITING_PAYMENT, Action.CANCEL): ItemState.CANCELLED,
    (ItemState.RELEASED, Action.SHIP): ItemState.SHIPPED,
    (ItemState.SHIPPED, Action.DELIVER): ItemState.DELIVERED,
}


def _next(facts: ItemFacts, action: Action, outcome: Outcome | None) -> ItemState:
    state = facts.state
    if state.is_final:
        raise IllegalTransition(state, action, "a final state allows no action")
    if (state, action) in _SIMPLE:
        return _SIMPLE[state, action]
    if action is Action.RECEIVE:
        return _receive(facts)
    if action is Action.CLOSE and state is ItemState.DELIVERED:
        return _close(facts)
    if action is Action.DECLINE and state is ItemState.WAITING_PAYMENT:
        return _decline(facts)
    if action is Action.SCRAP and state is ItemState.WAITING_PAYMENT:
        return _scrap(facts)
    legal = (
        (
            action is Action.CONFIRM_REMOTE
            and state in (ItemState.SUBMITTED, ItemState.AWAITING_UNIT)
        )
        or (action is Action.CONFIRM and state is ItemState.RECEIVED)
        or (action is Action.OVERRIDE and state in (ItemState.CONFIRMED, ItemState.WAITING_PAYMENT))
    )
    if not legal:
        raise IllegalTransition(state, action)
    if outcome is None:
        raise IllegalTransition(state, action, "an outcome (free, paid or return_unit) is needed")
    if action is Action.CONFIRM_REMOTE:
        return _confirm_remote(facts, outcome)
    if action is Action.OVERRIDE:
        return _override(facts, outcome)
    return ItemState.WAITING_PAYMENT if outcome is Outcome.PAID else ItemState.CONFIRMED


# -- public API -----------------------------------------------------------------------


def apply(
    facts: ItemFacts, action: Action | str, *, outcome: Outcome | str | None = None
) -> ItemState:
    """Return the state an item is in after ``action`` (R-R3, D-1, D-2, D-3, D-6).

    ``outcome`` is the decision the action carries (``confirm_remote``, ``confirm`` and
    ``override``); when omitted ``facts.outcome`` is used for ``confirm_remote`` and
    ``confirm`` (for ``override`` the new outcome must be given). The table:

    - submitted: request_unit → awaiting_unit; confirm_remote (free → confirmed, paid →
      waiting_payment, return_unit refused: no unit is here to return); receive →
      received; reject; cancel.
    - awaiting_unit: receive → received; confirm_remote as above; reject; cancel.
    - received: confirm (free or return_unit → confirmed, paid → waiting_payment); reject.
    - confirmed: ship → shipped; override (paid → waiting_payment, free → confirmed);
      cancel.
    - waiting_payment: release → released (D-3); override to free → confirmed; cancel;
      decline (the customer declined the quote) → confirmed when the unit is at the
      warehouse (it goes back like a return_unit outcome), else closed; scrap (declined,
      the customer asked to scrap it) → closed, only when the unit is at the warehouse.
    - released: ship → shipped. shipped: deliver → delivered.
    - delivered: close → closed, only once the unit was received or the outcome is
      return_unit.
    - receive also in confirmed … delivered, state unchanged, for a remote-confirmed item
      whose unit is not back yet (advance replacement, D-1/D-2); a second receive is
      refused.
    - closed, cancelled, rejected: final.

    An override must change the decision and names free or paid (D-6). Raises
    :class:`IllegalTransition` for anything else, and :class:`FactError` for an action
    or outcome string that is not a member of :class:`Action` / :class:`Outcome`.
    """
    action = _as_action(action)
    if outcome is not None:
        outcome = _as_outcome(outcome)
    elif action is not Action.OVERRIDE:
        outcome = facts.outcome
    return _next(facts, action, outcome)


def allowed_actions(facts: ItemFacts) -> frozenset[Action]:
    """Return every action :func:`apply` accepts for ``facts`` with some outcome.

    An action that carries an outcome is listed when at least one outcome is accepted
    (e.g. ``override`` on a confirmed free item: to paid). Empty for a final state.
    """
    allowed = set()
    for action in Action:
        outcomes = list(Outcome) if action in OUTCOME_ACTIONS else [None]
        for outcome in outcomes:
            try:
                _next(facts, action, outcome)
            except IllegalTransition:
                continue
            allowed.add(action)
            break
    return frozenset(allowed)


def clock_starts(
    action: Action | str, outcome: Outcome | str | None = None, *, clock_started: bool = False
) -> bool:
    """True when ``action`` with ``outcome`` starts the 72-hour replacement clock (R-R3).

    The clock starts when a free replacement is confirmed, remotely or on inspection
    (``confirm_remote``/``confirm`` with ``free``, R-R3/D-1); when a paid replacement is
    released (``release``, D-3); and when an override turns an item free (D-6) whose
    clock had not started. ``return_unit`` replaces nothing, so it starts no clock. Pass
    ``clock_started=True`` for an item whose clock already runs: it never restarts.
    Raises :class:`FactError` for an unknown action or outcome string.
    """
    action = _as_action(action)
    outcome = None if outcome is None else _as_outcome(outcome)
    if clock_started:
        return False
    if action is Action.RELEASE:
        return True
    if action in OUTCOME_ACTIONS:
        return outcome is Outcome.FREE
    return False
