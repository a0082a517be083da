"""The RMA item lifecycle: every (state, action) pair, the paths of D-1..D-3 and D-6."""

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warranty import (
    FINAL_STATES,
    Action,
    FactError,
    IllegalTransition,
    ItemFacts,
    ItemState,
    Outcome,
    WarrantyError,
    allowed_actions,
    apply,
    clock_starts,
)

# No example database: these tests must not write files into the checkout.
SETTINGS = settings(database=None, deadline=None)

S = ItemState
A = Action
FREE, PAID, RETURN = Outcome.FREE, Outcome.PAID, Outcome.RETURN_UNIT

# One ordinary item per state: a unit inspected at the warehouse (not remote).
TYPICAL = {
    S.SUBMITTED: ItemFacts(S.SUBMITTED),
    S.AWAITING_UNIT: ItemFacts(S.AWAITING_UNIT),
    S.RECEIVED: ItemFacts(S.RECEIVED, unit_received=True),
    S.CONFIRMED: ItemFacts(S.CONFIRMED, FREE, unit_received=True),
    S.WAITING_PAYMENT: ItemFacts(S.WAITING_PAYMENT, PAID, unit_received=True),
    S.RELEASED: ItemFacts(S.RELEASED, PAID, unit_received=True),
    S.SHIPPED: ItemFacts(S.SHIPPED, FREE, unit_received=True),
    S.DELIVERED: ItemFacts(S.DELIVERED, FREE, unit_received=True),
    S.CLOSED: ItemFacts(S.CLOSED, FREE, unit_received=True),
    S.CANCELLED: ItemFacts(S.CANCELLED),
    S.REJECTED: ItemFacts(S.REJECTED, unit_received=True),
}

# The documented table for TYPICAL items: (state, action) -> (outcome passed, next state).
LEGAL = {
    (S.SUBMITTED, A.REQUEST_UNIT): (None, S.AWAITING_UNIT),
    (S.SUBMITTED, A.CONFIRM_REMOTE): (FREE, S.CONFIRMED),
    (S.SUBMITTED, A.RECEIVE): (None, S.RECEIVED),
    (S.SUBMITTED, A.REJECT): (None, S.REJECTED),
    (S.SUBMITTED, A.CANCEL): (None, S.CANCELLED),
    (S.AWAITING_UNIT, A.RECEIVE): (None, S.RECEIVED),
    (S.AWAITING_UNIT, A.CONFIRM_REMOTE): (FREE, S.CONFIRMED),
    (S.AWAITING_UNIT, A.REJECT): (None, S.REJECTED),
    (S.AWAITING_UNIT, A.CANCEL): (None, S.CANCELLED),
    (S.RECEIVED, A.CONFIRM): (FREE, S.CONFIRMED),
    (S.RECEIVED, A.REJECT): (None, S.REJECTED),
    (S.CONFIRMED, A.SHIP): (None, S.SHIPPED),
    (S.CONFIRMED, A.OVERRIDE): (PAID, S.WAITING_PAYMENT),
    (S.CONFIRMED, A.CANCEL): (None, S.CANCELLED),
    (S.WAITING_PAYMENT, A.RELEASE): (None, S.RELEASED),
    (S.WAITING_PAYMENT, A.OVERRIDE): (FREE, S.CONFIRMED),
    (S.WAITING_PAYMENT, A.CANCEL): (None, S.CANCELLED),
    (S.WAITING_PAYMENT, A.DECLINE): (None, S.CONFIRMED),  # the unit goes back (issue 5)
    (S.WAITING_PAYMENT, A.SCRAP): (None, S.CLOSED),
    (S.RELEASED, A.SHIP): (None, S.SHIPPED),
    (S.SHIPPED, A.DELIVER): (None, S.DELIVERED),
    (S.DELIVERED, A.CLOSE): (None, S.CLOSED),
}
ALL_PAIRS = [(state, action) for state in S for action in A]
ILLEGAL = [pair for pair in ALL_PAIRS if pair not in LEGAL]
OUTCOME_CHOICES = [None, *Outcome]


def _message_names(exc: IllegalTransition, state: ItemState, action: Action) -> None:
    assert exc.state == state and exc.action == action
    assert str(exc).startswith(f"cannot {action.value} an item that is {state.value}")


@pytest.mark.parametrize(("state", "action"), list(LEGAL), ids=lambda v: str(v))
def test_R_R3_legal_pairs_give_the_documented_state(state, action):
    outcome, expected = LEGAL[state, action]
    assert apply(TYPICAL[state], action, outcome=outcome) is expected
    assert apply(TYPICAL[state], action.value, outcome=outcome) is expected  # strings too


@pytest.mark.parametrize(("state", "action"), ILLEGAL, ids=lambda v: str(v))
def test_R_R3_illegal_pairs_raise_naming_state_and_action(state, action):
    for outcome in OUTCOME_CHOICES:
        with pytest.raises(IllegalTransition) as info:
            apply(TYPICAL[state], action, outcome=outcome)
        _message_names(info.value, state, action)


def test_the_table_covers_every_pair():
    assert len(ALL_PAIRS) == len(S) * len(A) == 143
    assert len(LEGAL) + len(ILLEGAL) == 143


@pytest.mark.parametrize("state", list(S))
def test_allowed_actions_of_typical_items_match_the_table(state):
    expected = {action for (s, action) in LEGAL if s is state}
    assert allowed_actions(TYPICAL[state]) == expected


def test_final_states():
    assert {s.value for s in FINAL_STATES} == {"closed", "cancelled", "rejected"}


# -- outcomes -------------------------------------------------------------------------


@pytest.mark.parametrize("state", [S.SUBMITTED, S.AWAITING_UNIT])
@pytest.mark.parametrize(("outcome", "expected"), [(FREE, S.CONFIRMED), (PAID, S.WAITING_PAYMENT)])
def test_D_1_confirm_remote_free_or_paid(state, outcome, expected):
    assert apply(ItemFacts(state), A.CONFIRM_REMOTE, outcome=outcome) is expected
    assert apply(ItemFacts(state), "confirm_remote", outcome=outcome.value) is expected


@pytest.mark.parametrize("state", [S.SUBMITTED, S.AWAITING_UNIT])
def test_D_1_confirm_remote_refuses_return_unit_nothing_to_return(state):
    with pytest.raises(IllegalTransition) as info:
        apply(ItemFacts(state), A.CONFIRM_REMOTE, outcome=RETURN)
    _message_names(info.value, state, A.CONFIRM_REMOTE)
    assert "return" in info.value.reason


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [(FREE, S.CONFIRMED), (RETURN, S.CONFIRMED), (PAID, S.WAITING_PAYMENT)],
)
def test_D_3_D_4_confirm_on_inspection(outcome, expected):
    assert apply(TYPICAL[S.RECEIVED], A.CONFIRM, outcome=outcome) is expected


def test_confirm_uses_the_facts_outcome_when_none_is_passed():
    facts = ItemFacts(S.RECEIVED, PAID, unit_received=True)
    assert apply(facts, A.CONFIRM) is S.WAITING_PAYMENT
    assert apply(facts, A.CONFIRM, outcome=FREE) is S.CONFIRMED  # the argument wins
    assert apply(ItemFacts(S.SUBMITTED, FREE), A.CONFIRM_REMOTE) is S.CONFIRMED


@pytest.mark.parametrize(
    ("state", "action"),
    [(S.SUBMITTED, A.CONFIRM_REMOTE), (S.RECEIVED, A.CONFIRM), (S.CONFIRMED, A.OVERRIDE)],
)
def test_an_outcome_action_without_an_outcome_is_refused(state, action):
    facts = ItemFacts(state, unit_received=state is not S.SUBMITTED)
    with pytest.raises(IllegalTransition) as info:
        apply(facts, action)
    _message_names(info.value, state, action)
    assert "outcome" in info.value.reason


def test_D_6_override_both_ways():
    confirmed_free = ItemFacts(S.CONFIRMED, FREE, unit_received=True)
    assert apply(confirmed_free, A.OVERRIDE, outcome=PAID) is S.WAITING_PAYMENT
    waiting = ItemFacts(S.WAITING_PAYMENT, PAID, unit_received=True)
    assert apply(waiting, A.OVERRIDE, outcome=FREE) is S.CONFIRMED
    remote_waiting = ItemFacts(S.WAITING_PAYMENT, PAID, remote=True)
    assert apply(remote_waiting, A.OVERRIDE, outcome="free") is S.CONFIRMED


def test_D_6_override_of_a_no_fault_decision_to_free_or_paid():
    confirmed_return = ItemFacts(S.CONFIRMED, RETURN, unit_received=True)
    assert apply(confirmed_return, A.OVERRIDE, outcome=FREE) is S.CONFIRMED
    assert apply(confirmed_return, A.OVERRIDE, outcome=PAID) is S.WAITING_PAYMENT


@pytest.mark.parametrize(
    ("facts", "outcome"),
    [
        (ItemFacts(S.CONFIRMED, FREE, unit_received=True), FREE),
        (ItemFacts(S.WAITING_PAYMENT, PAID, unit_received=True), PAID),
        (ItemFacts(S.WAITING_PAYMENT, None, unit_received=True), PAID),
        (ItemFacts(S.CONFIRMED, FREE, unit_received=True), RETURN),
        (ItemFacts(S.WAITING_PAYMENT, PAID, unit_received=True), RETURN),
    ],
)
def test_D_6_override_must_change_free_and_paid(facts, outcome):
    with pytest.raises(IllegalTransition) as info:
        apply(facts, A.OVERRIDE, outcome=outcome)
    _message_names(info.value, facts.state, A.OVERRIDE)
    assert info.value.reason


def test_D_6_override_needs_the_new_outcome_even_when_facts_have_one():
    with pytest.raises(IllegalTransition):
        apply(ItemFacts(S.CONFIRMED, FREE, unit_received=True), A.OVERRIDE)


# -- paths ----------------------------------------------------------------------------


def _step(facts, action, outcome=None):
    """Apply one action and return the facts of the item afterwards."""
    state = apply(facts, action, outcome=outcome)
    new_outcome = outcome if outcome is not None else facts.outcome
    return ItemFacts(
        state,
        Outcome(new_outcome) if new_outcome is not None else None,
        unit_received=facts.unit_received or action is A.RECEIVE,
        remote=facts.remote or action is A.CONFIRM_REMOTE,
    )


def test_D_1_D_2_advance_replacement_ships_before_the_unit_is_back():
    facts = _step(ItemFacts(S.SUBMITTED), A.CONFIRM_REMOTE, FREE)
    assert (facts.state, facts.remote, facts.unit_received) == (S.CONFIRMED, True, False)
    assert A.RECEIVE in allowed_actions(facts)
    facts = _step(facts, A.SHIP)
    facts = _step(facts, A.DELIVER)
    assert facts.state is S.DELIVERED
    # close is refused while the faulty unit is awaited
    assert A.CLOSE not in allowed_actions(facts)
    with pytest.raises(IllegalTransition) as info:
        apply(facts, A.CLOSE)
    _message_names(info.value, S.DELIVERED, A.CLOSE)
    assert "not come back" in str(info.value)
    # the unit arrives later: the state stays delivered, then close is allowed
    facts = _step(facts, A.RECEIVE)
    assert (facts.state, facts.unit_received) == (S.DELIVERED, True)
    assert allowed_actions(facts) == {A.CLOSE}
    assert _step(facts, A.CLOSE).state is S.CLOSED


@pytest.mark.parametrize(
    "state", [S.CONFIRMED, S.WAITING_PAYMENT, S.RELEASED, S.SHIPPED, S.DELIVERED]
)
def test_D_2_late_receive_keeps_the_state_then_a_second_receive_is_refused(state):
    facts = ItemFacts(
        state, PAID if state in (S.WAITING_PAYMENT, S.RELEASED) else FREE, remote=True
    )
    assert apply(facts, A.RECEIVE) is state
    received = _step(facts, A.RECEIVE)
    assert A.RECEIVE not in allowed_actions(received)
    with pytest.raises(IllegalTransition) as info:
        apply(received, A.RECEIVE)
    _message_names(info.value, state, A.RECEIVE)
    assert "already received" in str(info.value)


@pytest.mark.parametrize(
    "state", [S.CONFIRMED, S.WAITING_PAYMENT, S.RELEASED, S.SHIPPED, S.DELIVERED]
)
def test_late_receive_needs_a_remote_confirmation(state):
    with pytest.raises(IllegalTransition):
        apply(ItemFacts(state, FREE, unit_received=False, remote=False), A.RECEIVE)


def test_a_second_receive_is_refused():
    facts = _step(ItemFacts(S.AWAITING_UNIT), A.RECEIVE)
    assert facts.state is S.RECEIVED
    with pytest.raises(IllegalTransition) as info:
        apply(facts, A.RECEIVE)
    assert str(info.value) == (
        "cannot receive an item that is received: the unit was already received"
    )


def test_D_3_paid_path_waits_for_payment_then_ships():
    facts = _step(ItemFacts(S.SUBMITTED), A.REQUEST_UNIT)
    facts = _step(facts, A.RECEIVE)
    facts = _step(facts, A.CONFIRM, PAID)
    assert facts.state is S.WAITING_PAYMENT
    assert A.SHIP not in allowed_actions(facts)  # D-3: not before it is paid or released
    for action in (A.RELEASE, A.SHIP, A.DELIVER, A.CLOSE):
        facts = _step(facts, action)
    assert facts.state is S.CLOSED


def test_D_3_remote_paid_path():
    facts = _step(ItemFacts(S.SUBMITTED), A.CONFIRM_REMOTE, PAID)
    assert facts.state is S.WAITING_PAYMENT
    facts = _step(facts, A.RELEASE)
    facts = _step(facts, A.RECEIVE)  # the unit comes back while the replacement waits
    assert facts.state is S.RELEASED
    for action in (A.SHIP, A.DELIVER, A.CLOSE):
        facts = _step(facts, action)
    assert facts.state is S.CLOSED


def test_D_4_return_unit_path_sends_the_unit_back():
    facts = _step(ItemFacts(S.SUBMITTED), A.REQUEST_UNIT)
    facts = _step(facts, A.RECEIVE)
    facts = _step(facts, A.CONFIRM, RETURN)
    assert facts.state is S.CONFIRMED
    assert A.RELEASE not in allowed_actions(facts)
    for action in (A.SHIP, A.DELIVER, A.CLOSE):
        facts = _step(facts, action)
    assert facts.state is S.CLOSED


def test_close_is_allowed_for_return_unit_even_without_a_receipt_fact():
    assert apply(ItemFacts(S.DELIVERED, RETURN), A.CLOSE) is S.CLOSED


def test_quote_declined_cancels_a_waiting_item():
    assert apply(TYPICAL[S.WAITING_PAYMENT], A.CANCEL) is S.CANCELLED


@pytest.mark.parametrize("state", sorted(FINAL_STATES))
def test_final_states_allow_nothing(state):
    for facts in (
        ItemFacts(state),
        ItemFacts(state, FREE, unit_received=False, remote=True),
        ItemFacts(state, PAID, unit_received=True),
    ):
        assert allowed_actions(facts) == frozenset()
        for action in A:
            for outcome in OUTCOME_CHOICES:
                with pytest.raises(IllegalTransition) as info:
                    apply(facts, action, outcome=outcome)
                _message_names(info.value, state, action)
                assert "final" in str(info.value)
    assert state.is_final


# -- errors ---------------------------------------------------------------------------


def test_illegal_transition_is_a_warranty_error_and_pickles():
    exc = IllegalTransition(S.SHIPPED, A.CONFIRM, "why")
    assert isinstance(exc, WarrantyError)
    copy = pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own bytes
    assert (copy.state, copy.action, copy.reason, str(copy)) == (
        S.SHIPPED,
        A.CONFIRM,
        "why",
        "cannot confirm an item that is shipped: why",
    )
    assert str(IllegalTransition(S.SHIPPED, A.CONFIRM)) == "cannot confirm an item that is shipped"


@pytest.mark.parametrize(
    "call",
    [
        lambda: apply(ItemFacts(S.SUBMITTED), "explode"),
        lambda: apply(ItemFacts(S.RECEIVED), A.CONFIRM, outcome="gratis"),
        lambda: ItemFacts("lost"),
        lambda: ItemFacts(S.CONFIRMED, "gratis"),
        lambda: clock_starts("explode"),
        lambda: clock_starts(A.CONFIRM, "gratis"),
    ],
)
def test_unknown_names_raise_fact_error(call):
    with pytest.raises(FactError):
        call()


def test_item_facts_accept_strings():
    facts = ItemFacts("waiting_payment", "paid")
    assert facts.state is S.WAITING_PAYMENT and facts.outcome is PAID


# -- clock_starts ---------------------------------------------------------------------

CLOCK_STARTS = [
    # (action, outcome, clock_started, starts)
    (A.CONFIRM_REMOTE, FREE, False, True),  # R-R3/D-1: remote confirmation
    (A.CONFIRM_REMOTE, PAID, False, False),  # D-3: waits for payment
    (A.CONFIRM, FREE, False, True),  # R-R3: confirmed on inspection
    (A.CONFIRM, PAID, False, False),  # D-3
    (A.CONFIRM, RETURN, False, False),  # D-4: nothing to replace
    (A.RELEASE, None, False, True),  # D-3: paid or released on credit
    (A.RELEASE, PAID, False, True),
    (A.OVERRIDE, FREE, False, True),  # D-6: paid -> free, clock not started yet
    (A.OVERRIDE, FREE, True, False),  # ... a running clock never restarts
    (A.OVERRIDE, PAID, False, False),
    (A.RELEASE, None, True, False),
    ("confirm_remote", "free", False, True),
]


@pytest.mark.parametrize(("action", "outcome", "started", "starts"), CLOCK_STARTS)
def test_R_R3_D_3_clock_starts(action, outcome, started, starts):
    assert clock_starts(action, outcome, clock_started=started) is starts


@pytest.mark.parametrize(
    "action",
    [A.REQUEST_UNIT, A.RECEIVE, A.SHIP, A.DELIVER, A.CLOSE, A.CANCEL, A.REJECT],
)
@pytest.mark.parametrize("outcome", OUTCOME_CHOICES)
def test_R_R3_other_actions_never_start_the_clock(action, outcome):
    assert clock_starts(action, outcome) is False


# -- properties -----------------------------------------------------------------------

steps = st.lists(
    st.tuples(st.sampled_from(A), st.sampled_from(OUTCOME_CHOICES)), min_size=1, max_size=30
)
any_facts = st.builds(
    ItemFacts,
    state=st.sampled_from(S),
    outcome=st.sampled_from(OUTCOME_CHOICES),
    unit_received=st.booleans(),
    remote=st.booleans(),
)


@SETTINGS
@given(steps)
def test_random_sequences_stay_in_the_state_set_and_agree_with_allowed_actions(sequence):
    facts = ItemFacts(S.SUBMITTED)
    for action, outcome in sequence:
        allowed = allowed_actions(facts)
        was_final = facts.state in FINAL_STATES
        try:
            after = _step(facts, action, outcome)
        except IllegalTransition as exc:
            assert exc.state is facts.state and exc.action is action
            continue
        assert action in allowed  # accepted => allowed
        assert not was_final  # a final state never moves
        assert after.state in set(S)
        facts = after
    if facts.state in FINAL_STATES:
        assert allowed_actions(facts) == frozenset()


@SETTINGS
@given(any_facts)
def test_apply_accepts_an_action_iff_allowed_actions_lists_it(facts):
    allowed = allowed_actions(facts)
    for action in A:
        accepted = []
        for outcome in OUTCOME_CHOICES:
            try:
                state = apply(facts, action, outcome=outcome)
            except IllegalTransition:
                continue
            accepted.append(outcome)
            assert state in set(S)
        assert bool(accepted) is (action in allowed), (facts, action)
    if facts.state in FINAL_STATES:
        assert allowed == frozenset()


def test_declined_quote_without_the_unit_closes_the_item():
    """A remote-confirmed paid item whose quote is declined: the faulty unit never came
    in, so nothing goes back and the item closes; it cannot be scrapped here."""
    facts = ItemFacts(S.WAITING_PAYMENT, PAID, unit_received=False, remote=True)
    assert apply(facts, A.DECLINE) is S.CLOSED
    with pytest.raises(IllegalTransition, match="not at the warehouse to scrap"):
        apply(facts, A.SCRAP)
    assert A.SCRAP not in allowed_actions(facts)
    assert A.DECLINE in allowed_actions(facts)


def test_declined_and_returned_unit_closes_after_delivery():
    """After a decline the unit ships back like a return_unit outcome and closes on
    delivery."""
    facts = ItemFacts(S.WAITING_PAYMENT, PAID, unit_received=True)
    state = apply(facts, A.DECLINE)
    shipped = apply(ItemFacts(state, RETURN, unit_received=True), A.SHIP)
    delivered = apply(ItemFacts(shipped, RETURN, unit_received=True), A.DELIVER)
    assert apply(ItemFacts(delivered, RETURN, unit_received=True), A.CLOSE) is S.CLOSED
    assert clock_starts(A.DECLINE) is False and clock_starts(A.SCRAP) is False
