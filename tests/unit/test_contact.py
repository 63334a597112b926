"""normalize_contact: Kazoo's E.164 converters, strict characters, whitelisted SIP URIs."""

from __future__ import annotations

import pytest

from c2c_ari.domain.contact import REQUIRED_MESSAGE, normalize_contact, to_e164
from c2c_ari.domain.errors import ValidationFailed


def refused(raw: object, **kwargs: object) -> dict:
    with pytest.raises(ValidationFailed) as caught:
        normalize_contact(raw, **kwargs)  # type: ignore[arg-type]
    errors = caught.value.errors
    assert set(errors) == {"contact"}
    return errors["contact"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # ^(\+?1)?([2-9][0-9]{2}[2-9][0-9]{6})$ -> +1 + group 2
        ("4155551234", "+14155551234"),
        ("14155551234", "+14155551234"),
        ("+14155551234", "+14155551234"),
        ("+4155551234", "+4155551234"),  # "+" without the 1 is already E.164 (zone 4)
        # ^011(\d{5,})$ and ^00(\d{5,})$ -> + group 1
        ("011442071234567", "+442071234567"),
        ("00442071234567", "+442071234567"),
        ("0033123456", "+33123456"),
        # ^[2-9]\d{7,}$ -> + number
        ("442071234567", "+442071234567"),
        ("33123456789", "+33123456789"),
        # already E.164 stays
        ("+442071234567", "+442071234567"),
        ("+861012345678", "+861012345678"),
        ("+123456", "+123456"),
        ("+123456789012345", "+123456789012345"),
    ],
)
def test_numbers_normalised(raw: str, expected: str) -> None:
    assert normalize_contact(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # A NANP exchange (the 4th of 10 digits) starts with 2-9: with 0 or 1 there, the
        # number is not a US one and gets no +1 (the last rule, ^[2-9]\d{7,}$, may apply).
        ("4150551234", "+4150551234"),
        ("4151551234", "+4151551234"),
        ("2120001234", "+2120001234"),
    ],
)
def test_exchange_starting_with_0_or_1_gets_no_country_code_1(raw: str, expected: str) -> None:
    assert normalize_contact(raw) == expected


@pytest.mark.parametrize("raw", ["14150551234", "14151551234"])
def test_leading_1_with_exchange_starting_with_0_or_1_is_not_e164(raw: str) -> None:
    assert "pattern" in refused(raw)


def test_first_converter_wins() -> None:
    # matches both the NANP rule and ^[2-9]\d{7,}$; NANP is first
    assert to_e164("2125551234") == "+12125551234"
    assert to_e164("12345") == "12345"


@pytest.mark.parametrize(
    "raw",
    [
        "12345",  # no rule matches, not E.164
        "2345678",  # ^[2-9]\d{7,}$ needs 8 digits
        "0112345",  # 011 with fewer than 5 digits
        "001234",
        "+12345",  # 5 digits: too short for E.164 here
        "+1234567890123456",  # 16 digits
        "+0123456789",  # country code cannot start with 0
        "1555",
        "+",
        "0",
    ],
)
def test_not_e164(raw: str) -> None:
    problem = refused(raw)
    assert problem == {
        "pattern": {
            "message": "Contact is not a valid E.164 number",
            "target": r"^\+[1-9][0-9]{5,14}$",
        }
    }


@pytest.mark.parametrize("raw", [None, ""])
def test_missing(raw: object) -> None:
    assert refused(raw) == {"required": {"message": REQUIRED_MESSAGE}}


@pytest.mark.parametrize("raw", [14155551234, 1.5, True, ["+14155551234"], {"n": 1}, b"+1415"])
def test_not_a_string(raw: object) -> None:
    assert refused(raw) == {
        "type": {"message": "Value did not match type(s): string", "target": "string"}
    }


def test_too_long() -> None:
    assert refused("1" * 65) == {
        "maxLength": {"message": "String must not be more than 64 characters", "target": 64}
    }
    assert "maxLength" in refused("sip:" + "a" * 50 + "@example.com", whitelist=["."])


@pytest.mark.parametrize(
    "raw",
    [
        "415 555 1234",
        " 4155551234",
        "4155551234 ",
        "415-555-1234",
        "(415)5551234",
        "415.555.1234",
        "4155551234&PJSIP/evil",
        "4155551234,1",
        "4155551234/1",
        "4155551234@example.com",
        "4155551234;user=phone",
        "4155551234\r\n",
        "4155551234\x00",
        "41555\t51234",
        "1+4155551234",
        "++14155551234",
        "١٢٣٤٥٦٧٨٩٠",  # Arabic-Indic digits
        "\uff14\uff11\uff15\uff15\uff15\uff15\uff11\uff12\uff13\uff14",  # fullwidth
        "%2B14155551234",
    ],
)
def test_bad_characters(raw: str) -> None:
    problem = refused(raw)
    assert set(problem) == {"pattern"}
    message = problem["pattern"]["message"]
    assert message.startswith("Contact must be digits 0-9")
    assert message.isprintable()  # never echoes control characters


def test_bad_character_is_named() -> None:
    assert "found '&' at position 10" in refused("4155551234&x")["pattern"]["message"]
    assert "whitespace (U+000D)" in refused("4155551234\r")["pattern"]["message"]
    assert "U+0000" in refused("41\x00")["pattern"]["message"]
    assert "U+0661" in refused("١٢٣")["pattern"]["message"]


# --- SIP URIs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "sip:alice@example.com",
        "sip:+14155551234@10.0.0.1:5060",
        "sip:bob.smith_1-x@pbx-1.example.org",
    ],
)
def test_sip_uri_with_matching_whitelist(uri: str) -> None:
    patterns = ["^nomatch$", r"^sip:[^@]+@(example\.com|pbx-1|10\.)"]
    assert normalize_contact(uri, whitelist=patterns) == uri


def test_sip_scheme_is_case_insensitive() -> None:
    assert normalize_contact("SIP:alice@example.com", whitelist=["^sip:alice@"]) == (
        "sip:alice@example.com"
    )


@pytest.mark.parametrize("patterns", [None, []])
def test_sip_uri_needs_a_whitelist(patterns: list[str] | None) -> None:
    problem = refused("sip:alice@example.com", whitelist=patterns)
    assert "whitelist" in problem["pattern"]["message"]


def test_sip_uri_not_matching_whitelist() -> None:
    problem = refused("sip:alice@example.com", whitelist=[r"^\+1"])
    assert problem == {
        "whitelist": {
            "message": "Contact doesn't match whitelist",
            "value": "sip:alice@example.com",
        }
    }


@pytest.mark.parametrize(
    "uri",
    [
        "sip:alice@example.com;transport=tcp",
        "sip:alice@example.com?X-Evil=1",
        "sip:alice@example.com>",
        "sip:alice@example.com,sip:bob@example.com",
        "sip:alice @example.com",
        "sip:alice@example.com\r\n",
        "sip:alice@",
        "sip:@example.com",
        "sip:alice",
        "sip:alice@exa mple.com",
        "sip:alice@example.com:0",
        "sip:alice@example.com:65536",
        "sip:alice@example.com:",
        "sip:alice:secret@example.com",
        "sip:a@b@example.com",
        "sip:alice@[::1]",
        "sip:alice@-example.com",
        "sips:alice@example.com",
        "tel:+14155551234",
    ],
)
def test_malformed_sip_uri(uri: str) -> None:
    problem = refused(uri, whitelist=["."])
    assert set(problem) == {"pattern"}
    assert problem["pattern"]["message"].isprintable()


def test_numbers_are_not_whitelisted_here() -> None:
    # the caller runs whitelist.check on every contact; normalize only gates SIP URIs
    assert normalize_contact("4155551234", whitelist=["^nomatch$"]) == "+14155551234"
