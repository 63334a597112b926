"""Property tests of everything that reads untrusted input: whatever comes in, the answer is
a value the rest of the service can store and send back, or a refusal it knows how to word
(ValueError / ValidationFailed) — never another exception."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from c2c_ari.api.envelope import encode_json
from c2c_ari.api.request import parse_query_int, strict_json
from c2c_ari.domain import whitelist
from c2c_ari.domain.contact import normalize_contact
from c2c_ari.domain.errors import ValidationFailed
from c2c_ari.domain.origins import normalize_origin, request_origin
from c2c_ari.schemas import default_validator

JSON_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats()
                | st.text(max_size=20))
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)


def _json_texts() -> st.SearchStrategy[str]:
    """Text that is JSON, nearly JSON, or JSON with hostile pieces spliced in."""
    hostile = st.sampled_from(["NaN", "-Infinity", "1e400", "9" * 30, '"\\ud800"', "[" * 40,
                               '{"a":' * 40, '"\\u0000"', "\ufeff", "\\", '"\\udfff\\ud800"'])
    dumped = JSON_VALUES.map(lambda v: json.dumps(v, allow_nan=True))
    return st.one_of(
        dumped,
        st.tuples(dumped, hostile, st.integers(0, 50)).map(
            lambda t: t[0][: t[2]] + t[1] + t[0][t[2]:]),
        st.text(max_size=200),
    )


@settings(max_examples=1500, deadline=None)
@given(_json_texts())
def test_strict_json_returns_what_can_be_sent_back(text: str) -> None:
    try:
        value = strict_json(text)
    except ValueError:
        return
    encoded = encode_json(value)
    encoded.encode("utf-8")  # no lone surrogate survived
    assert json.loads(encoded) == value


DOCS = st.fixed_dictionaries(
    {"name": st.text(max_size=10), "extension": st.text(max_size=10)},
    optional={key: JSON_VALUES for key in (
        "timeout", "throttle", "whitelist", "custom_sip_headers", "custom_application_vars",
        "dial_first", "media", "ringback", "allowed_origins", "bypass_media")},
)


@settings(max_examples=1000, deadline=None)
@given(DOCS)
def test_validation_answers_in_kazoo_shape_or_fills_defaults(doc: dict[str, Any]) -> None:
    try:
        filled = default_validator().validate(doc)
    except ValidationFailed as failed:
        for field, problems in failed.errors.items():
            assert isinstance(field, str)
            for problem in problems.values():
                assert isinstance(problem["message"], str)
        return
    assert filled["name"] == doc["name"]
    assert filled.get("timeout", 30) >= 1


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.text(max_size=70), JSON_SCALARS),
       st.lists(st.text(max_size=30), max_size=3))
def test_contacts_are_normalised_or_refused(raw: object, patterns: list[str]) -> None:
    try:
        contact = normalize_contact(raw, whitelist=patterns)
    except ValidationFailed as failed:
        assert set(failed.errors) == {"contact"}
        return
    # whatever is accepted is safe in a dial string
    assert contact.isascii() and not any(c in contact for c in ",&/()\r\n ;")


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=60))
def test_whitelist_patterns_compile_or_are_refused(pattern: str) -> None:
    try:
        compiled = whitelist.compile_pattern(pattern)
    except ValueError as refused:
        assert str(refused).isprintable()
        return
    compiled.search(b"+4930123456")
    assert whitelist.allows([pattern], "+4930123456") in (True, False)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=30))
def test_query_integers(raw: str) -> None:
    try:
        value = parse_query_int("page_size", raw, minimum=1, maximum=1000)
    except ValidationFailed:
        return
    assert 1 <= value <= 1000
    assert raw.isascii() and raw.isdigit() and int(raw) == value


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.none(), st.text(max_size=80)), st.one_of(st.none(), st.text(max_size=80)))
def test_origins(origin: str | None, referer: str | None) -> None:
    found = request_origin(origin, referer)
    if found is not None:
        normalized = normalize_origin(found)
        assert normalized is None or normalized.startswith(("http://", "https://"))
