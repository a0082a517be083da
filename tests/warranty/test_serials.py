"""D-8: serial numbers are trimmed, upper-cased and checked."""

import copy

import pytest

from warranty import DEFAULT_POLICY, SerialError, WarrantyError, is_valid_serial, normalize_serial


@pytest.mark.parametrize(
    ("raw", "serial"),
    [
        ("AB12", "AB12"),
        ("ab12", "AB12"),
        ("  tk-0001-x  ", "TK-0001-X"),
        ("TK0001\n", "TK0001"),  # a USB scanner types the code and presses Enter
        ("\tTK0001\r\n", "TK0001"),
        ("\u3000TK0001\u3000", "TK0001"),  # ideographic space from a Chinese IME
        ("----", "----"),
        ("0000", "0000"),
        ("A" * 32, "A" * 32),
        ("a1b2-c3d4", "A1B2-C3D4"),
    ],
)
def test_D_8_serial_normalisation_valid(raw, serial):
    assert normalize_serial(raw) == serial
    assert is_valid_serial(raw)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("ab#12", "'ab#12'"),
        ("  ab#12 ", "'ab#12'"),  # the trimmed value is quoted back
        ("AB1", "'AB1'"),  # too short
        ("A" * 33, "'" + "A" * 33 + "'"),  # too long
        ("AB 12", "'AB 12'"),  # an inner space is not trimmed
        ("AB_12", "'AB_12'"),
        ("AB.12", "'AB.12'"),
        ("AB12\x00", "'AB12\\x00'"),  # control characters are shown escaped
        ("ＡＢ１２", "'ＡＢ１２'"),  # full-width letters are not A-Z
        ("straße", "'straße'"),  # 'ß'.upper() is 'SS': must not slip through
        ("ﬁle1", "'ﬁle1'"),  # the 'fi' ligature upper-cases to 'FI'
        ("AB–12", "'AB–12'"),  # an en dash is not '-'
    ],
)
def test_D_8_serial_normalisation_invalid(raw, shown):
    with pytest.raises(SerialError) as info:
        normalize_serial(raw)
    message = str(info.value)
    assert message == f"serial {shown} is not valid: use 4 to 32 characters A-Z, 0-9 and '-'"
    assert info.value.raw == raw
    assert not is_valid_serial(raw)


@pytest.mark.parametrize("raw", ["", "   ", "\n", None])
def test_D_8_empty_serial_says_it_is_empty(raw):
    with pytest.raises(SerialError, match=r"^serial is empty: use 4 to 32 characters") as info:
        normalize_serial(raw)
    assert info.value.raw == raw
    assert not is_valid_serial(raw)


@pytest.mark.parametrize("raw", [b"AB12", 1234, ["AB12"]])
def test_D_8_non_text_is_refused(raw):
    with pytest.raises(SerialError, match="must be text") as info:
        normalize_serial(raw)
    assert info.value.raw is raw
    assert not is_valid_serial(raw)


def test_D_8_long_input_is_quoted_shortened():
    raw = "#" * 5000
    with pytest.raises(SerialError) as info:
        normalize_serial(raw)
    assert len(str(info.value)) < 200
    assert info.value.raw == raw


def test_D_8_lengths_come_from_the_policy():
    policy = DEFAULT_POLICY.with_overrides(serial_min_length=2, serial_max_length=6)
    assert normalize_serial("ab", policy) == "AB"
    assert is_valid_serial("abcdef", policy)
    with pytest.raises(SerialError, match="use 2 to 6 characters"):
        normalize_serial("abcdefg", policy)


def test_serial_error_is_a_warranty_and_value_error_and_copies():
    with pytest.raises(SerialError) as info:
        normalize_serial("ab#12")
    error = info.value
    assert isinstance(error, WarrantyError)
    assert isinstance(error, ValueError)
    clone = copy.copy(error)  # goes through __reduce__, as pickling does
    assert (str(clone), clone.raw) == (str(error), error.raw)
