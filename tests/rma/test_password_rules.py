"""Password rules (issue 8, hostile input): long enough, not too long, not too simple.

Every way to set a password (``rma create-user``, an invitation, a colleague's reset)
goes through ``users.check_password_rules``; the form tests show the refusal beside the
field (tests/rma/test_invitations.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rma.services import ValidationError
from rma.services.users import check_password_rules, hash_password
from tests.conftest import make_app


@pytest.fixture(scope="module")
def plain_app(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("password-rules")
    app = make_app(f"sqlite:///{tmp_path / 'unused.sqlite3'}", tmp_path)
    with app.app_context():
        yield app


@pytest.mark.parametrize(("password", "why"), [
    ("", "at least 10"),
    ("short-9ch", "at least 10"),
    ("x" * 257, "at most 256"),
    ("aaaaaaaaaaaa", "too simple"),          # one character repeated
    ("abcabcabcabc", "too simple"),          # 3 different characters
    ("12345678901234", "too simple"),        # only digits
])
def test_weak_passwords_are_refused_on_the_password_field(plain_app, password, why):
    with pytest.raises(ValidationError, match=why) as refused:
        check_password_rules(password)
    assert refused.value.field == "password"


@pytest.mark.parametrize("password", [
    "abcdabcdab",                 # exactly 10, 4 different characters
    "correct-horse-battery",
    "密码是一个很长的句子啊",       # 11 Chinese characters
    "x1y2" * 64,                  # exactly 256
])
def test_good_passwords_pass(plain_app, password):
    check_password_rules(password)


def test_the_minimum_length_is_a_setting(tmp_path):
    app = make_app(f"sqlite:///{tmp_path / 'unused.sqlite3'}", tmp_path,
                   PASSWORD_MIN_LENGTH=14)
    with app.app_context():
        with pytest.raises(ValidationError, match="at least 14"):
            check_password_rules("abcd-efgh-ij")  # 12: enough by default, not here
        check_password_rules("abcd-efgh-ijkl")


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=10, max_size=256))
def test_property_a_password_passes_exactly_when_it_is_not_simple(plain_app, password):
    """No other rule hides in the check: 10..256 characters pass unless they use fewer
    than 4 different characters or are all digits."""
    simple = len(set(password)) < 4 or password.isdigit()
    try:
        check_password_rules(password)
    except ValidationError:
        assert simple
    else:
        assert not simple


def test_the_stored_hash_is_salted_and_never_the_password(plain_app):
    first, second = hash_password("correct-horse-battery"), hash_password("correct-horse-battery")
    assert first != second and "correct-horse-battery" not in first
    assert first.startswith("pbkdf2:") or first.startswith("scrypt:")

