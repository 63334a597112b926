"""The fast validity check of DocumentValidator against jsonschema, the authority.

The fast check may answer "valid" only where jsonschema finds no error (anything else sends the
document to jsonschema, which decides). These tests compare both answers on the cases of
test_schemas.py, on the known traps (Python's `$` before a trailing newline, 30.0 and True as
integers, RE2-only patterns, lone surrogates, refused header names) and on generated
documents; and they check that the ordinary valid documents do take the fast path, or it
would save nothing.
"""

from __future__ import annotations

import copy
import enum
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from c2c_ari.domain import validation
from c2c_ari.domain.errors import ValidationFailed
from c2c_ari.domain.validation import DocumentValidator, default_validator, load_schemas

VALIDATOR = default_validator()
SCHEMAS = load_schemas()
PROPS = SCHEMAS["clicktocall"]["properties"]
MINIMAL = {"name": "Sales", "extension": "1001"}
GENERATED = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def answers(doc: Any, schema: str = "clicktocall",
            validator: DocumentValidator = VALIDATOR) -> tuple[bool, bool]:
    """(fast, full): the fast check's "valid" and jsonschema's, asserting fast => full."""
    fast = validator._valid_at_a_glance(doc, schema)
    full = validator._validators[schema].is_valid(doc)
    assert full or not fast, f"the fast check accepted what jsonschema refuses: {doc!r}"
    return fast, full


# --- documents both must accept, on the fast path ------------------------------------------

VALID = [
    MINIMAL,
    {**MINIMAL, "whitelist": ["^\\+1"]},
    {**MINIMAL, "whitelist": ["^\\+1555", "^\\+44[0-9]{9,10}$", "^sip:.*@example\\.com$"]},
    {**MINIMAL, "whitelist": []},
    {**MINIMAL, "whitelist": ["(a+)+$", "(x+x+)+y", "(.*a){20}"]},
    {**MINIMAL, "name": "Zürich ☎ 東京", "extension": "sales.team_1-a"},
    {**MINIMAL, "extension": "+15551234567"},
    {**MINIMAL, "extension": "*97"},
    {**MINIMAL, "extension": "#1"},
    {**MINIMAL, "name": "x" * 128, "extension": "9" * 64},
    {**MINIMAL, "auth_required": False, "timeout": 45, "dial_first": "contact"},
    {**MINIMAL, "timeout": 1, "throttle": 1},
    {**MINIMAL, "timeout": 600, "throttle": 10**4},
    {**MINIMAL, "bypass_media": True},
    {**MINIMAL, "media": {}},
    {**MINIMAL, "media": {"ignore_early_media": False}},
    {**MINIMAL, "music_on_hold": {"media_id": ""}},
    {**MINIMAL, "music_on_hold": {"media_id": "x" * 2048}},
    {**MINIMAL, "caller_id_number": "", "outbound_callee_id_number": "+1555"},
    {**MINIMAL, "outbound_callee_id_name": "Desk", "presence_id": "p@x",
     "ringback": "%(2000,4000,440,480)"},
    {**MINIMAL, "custom_application_vars": {"campaign": "spring", "ref-id_2": "x y"}},
    {**MINIMAL, "custom_application_vars": {"k": "v" * 1024}},
    {**MINIMAL, "custom_application_vars": {f"k{i}": "v" for i in range(64)}},
    {**MINIMAL, "custom": "value", "nested": {"a": [1, 2]}},  # the top level is open
    {**MINIMAL, "custom_sip_headers": {}},
    {**MINIMAL, "custom_sip_headers": {"X-Foo": "bar", "x-lower": "",
                                       "P-Asserted-Identity": "<sip:1@example.com>"}},
    {**MINIMAL, "custom_sip_headers": {"X`Tick": "ok", "X.Dot!%*_+'~": "ok"}},
    {**MINIMAL, "custom_sip_headers": {"in": {"X-In": "1"}, "out": {"X-Out": "2"}}},
    {**MINIMAL, "custom_sip_headers": {"out": {"X-Out": "2"}, "X-Legacy": "flat"}},
    {**MINIMAL, "custom_sip_headers": {"X-Via": "1", "Viaduct": "2", "To-Do": "3", "Fromage": "4"}},
    {**MINIMAL, "custom_sip_headers": {f"X-{i}": "v" for i in range(32)}},
]


@pytest.mark.parametrize("doc", VALID)
def test_valid_documents_take_the_fast_path(doc: dict) -> None:
    assert answers(doc) == (True, True)


@pytest.mark.parametrize(
    ("schema", "doc"),
    [
        ("custom_sip_headers", {"X-Foo": "bar"}),
        ("custom_sip_headers", {"in": {"X-In": "1"}}),
        ("connect", {}),
        ("connect", {"contact": "+14155550100", "blocking": True}),
        ("connect", {"blocking": "false", "custom_application_vars": {"a": "b"}}),
    ],
)
def test_other_schemas_take_the_fast_path(schema: str, doc: dict) -> None:
    assert answers(doc, schema) == (True, True)


# --- documents both must refuse ------------------------------------------------------------

CONTROL = ["a\r\nb", "a\nb", "ab\n", "\x00", "a\tb", "\x7f", "\x1b[2J"]
BAD_HEADER_NAMES = ["X[Foo]", "X]", "X^Y", "X\\Y", "X Y", "X:Y", "X\nY", "", "é", "X-Foo\n",
                    "Via", "via", "VIA", "f", "t", "X", "Call-ID", "Content-Length", "CSeq",
                    "Max-Forwards", "Route", "Record-Route", "Proxy-Authorization",
                    "Refer-To", "Replaces", "Session-Expires", "x" * 65]

INVALID = [
    {},
    {"name": "Sales"},
    {"extension": "1001"},
    {"name": 5, "timeout": 0, "throttle": 0, "dial_first": "x"},
    # Python's `$` matches before a trailing newline; RE2's (and ours) does not
    {**MINIMAL, "extension": "1001\n"},
    {**MINIMAL, "name": "Sales\n"},
    {**MINIMAL, "caller_id_number": "+1555\n"},
    {**MINIMAL, "custom_application_vars": {"key\n": "v"}},
    {**MINIMAL, "custom_sip_headers": {"X-Foo\n": "v"}},
    # 30.0 and True are not integers here
    {**MINIMAL, "timeout": 30.0},
    {**MINIMAL, "timeout": True},
    {**MINIMAL, "throttle": True},
    {**MINIMAL, "throttle": 1.5},
    {**MINIMAL, "timeout": 0},
    {**MINIMAL, "timeout": 601},
    {**MINIMAL, "timeout": float("nan")},
    {**MINIMAL, "throttle": 0},
    {**MINIMAL, "throttle": None},
    # booleans are booleans only
    *({**MINIMAL, "bypass_media": v} for v in ("auto", "true", "false", 1, 0, None)),
    {**MINIMAL, "auth_required": 1},
    {**MINIMAL, "media": {"ignore_early_media": 0}},
    {**MINIMAL, "media": []},
    {**MINIMAL, "dial_first": "Extension"},
    {**MINIMAL, "dial_first": True},
    # lone surrogates cannot be matched by RE2: refused
    {**MINIMAL, "name": "a\ud800"},
    {**MINIMAL, "custom_application_vars": {"k": "\udfff"}},
    {**MINIMAL, "custom_application_vars": {"k\ud800": "v"}},
    {**MINIMAL, "custom_sip_headers": {"X-\ud800": "v"}},
    # lengths and counts
    {**MINIMAL, "name": ""},
    {**MINIMAL, "name": "x" * 129},
    {**MINIMAL, "extension": ""},
    {**MINIMAL, "extension": "x" * 65},
    {**MINIMAL, "music_on_hold": {"media_id": "x" * 2049}},
    {**MINIMAL, "custom_application_vars": {"k": "v" * 1025}},
    {**MINIMAL, "custom_application_vars": {f"k{i}": "v" for i in range(65)}},
    {**MINIMAL, "custom_application_vars": {"": "v"}},
    {**MINIMAL, "custom_application_vars": {"k" * 65: "v"}},
    {**MINIMAL, "custom_application_vars": {"bad key": "v"}},
    {**MINIMAL, "custom_application_vars": {"n": 1}},
    {**MINIMAL, "custom_application_vars": []},
    {**MINIMAL, "custom_sip_headers": {f"X-{i}": "v" for i in range(33)}},
    {**MINIMAL, "custom_sip_headers": {"X-Foo": "v" * 1025}},
    {**MINIMAL, "custom_sip_headers": {"in": "X-Foo"}},
    {**MINIMAL, "custom_sip_headers": {"out": {"in": {}}}},
    {**MINIMAL, "custom_sip_headers": {"in": {f"X-{i}": "v" for i in range(33)}}},
    {**MINIMAL, "custom_sip_headers": []},
    # whitelist entries must compile in RE2, whatever Python's re thinks of them
    *({**MINIMAL, "whitelist": ["^ok$", p]} for p in
      ("(a)\\1", "(?=a)", "(?!a)", "(?<=a)b", "[", "a{1001}", "(?P<n>a)(?P=n)")),
    {**MINIMAL, "whitelist": [""]},
    {**MINIMAL, "whitelist": ["a" * 513]},
    {**MINIMAL, "whitelist": ["a"] * 101},
    {**MINIMAL, "whitelist": [5]},
    {**MINIMAL, "whitelist": "^\\+1"},
    [1],
    "doc",
    None,
    *({**MINIMAL, key: value} for key in ("name", "caller_id_number", "presence_id", "ringback",
                                          "outbound_callee_id_name") for value in CONTROL),
    *({**MINIMAL, "extension": e} for e in
      ("10 01", "1001&PJSIP/evil", "a,b", "a/b", "a;b", "a@b")),
    *({**MINIMAL, "custom_sip_headers": {name: "v"}} for name in BAD_HEADER_NAMES),
    *({**MINIMAL, "custom_sip_headers": {"out": {name: "v"}}} for name in BAD_HEADER_NAMES),
    *({**MINIMAL, "custom_sip_headers": {"X-Foo": value}} for value in CONTROL),
]


@pytest.mark.parametrize("doc", INVALID)
def test_invalid_documents_are_refused_by_both(doc: Any) -> None:
    assert answers(doc) == (False, False)
    with pytest.raises(ValidationFailed):
        VALIDATOR.validate(doc)


@pytest.mark.parametrize(
    ("schema", "doc"),
    [
        ("custom_sip_headers", {"Via": "x"}),
        ("custom_sip_headers", {"X-Foo": "a\r\nX-Evil: 1"}),
        ("connect", {"blocking": 1}),
        ("connect", {"blocking": 0}),
        ("connect", {"blocking": 1.0}),
        ("connect", {"blocking": "TRUE"}),
        ("connect", {"blocking": None}),
        ("connect", {"contact": ""}),
        ("connect", {"custom_application_vars": {"bad key": "v"}}),
        ("connect", {"custom_application_vars": {"k": "a\nb"}}),
    ],
)
def test_other_schemas_refuse(schema: str, doc: dict) -> None:
    assert answers(doc, schema) == (False, False)


def test_a_quick_pattern_search_that_gives_up_changes_no_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # RE2::Set answers "no match" when its DFA runs out of memory; a forbidden header name
    # (refused by a "not" of a pattern) must still be refused.
    monkeypatch.setattr(validation, "_quick_search", lambda _pattern: lambda _text: None)
    validator = DocumentValidator()
    for doc in VALID:
        assert answers(doc, validator=validator) == (True, True)
    for doc in INVALID:
        assert answers(doc, validator=validator) == (False, False)


# --- values that are not plain JSON: the fast check leaves them to jsonschema ----------------


class Text(str):
    pass


class Number(enum.IntEnum):
    THIRTY = 30


@pytest.mark.parametrize(
    "doc",
    [
        {**MINIMAL, "whitelist": ("^\\+1",)},
        {**MINIMAL, "name": Text("Sales")},
        {**MINIMAL, "timeout": Number.THIRTY},
        {**MINIMAL, "timeout": Decimal(30)},
        {**MINIMAL, "timeout": Decimal("30.5")},
        {**MINIMAL, "custom_application_vars": {1: "v"}},
    ],
)
def test_values_that_are_not_plain_json_are_left_to_jsonschema(doc: dict) -> None:
    fast, full = answers(doc)
    assert not fast
    if full:
        assert VALIDATOR.validate(doc)["name"] == doc["name"]
    else:
        with pytest.raises(ValidationFailed):
            VALIDATOR.validate(doc)


# --- the compiler on schemas of its own: negation must stay exact ---------------------------


def validator_for(schema: dict) -> DocumentValidator:
    return DocumentValidator({"t": {"$id": "t", **schema}})


JSON_SAMPLES: list[Any] = [
    None, True, False, 0, 1, 1.0, 1.5, -1, 30.0, float("nan"), float("inf"), "", "a", "1",
    "true", "A\n", "\ud800", [], [1], [True], ["a", "b"], {}, {"a": 1}, {"": None},
    {"a": {"b": [1, 2]}},
]
# Schemas whose every keyword the fast check handles: its answer must be jsonschema's.
EXACT_SCHEMAS: list[dict] = [
    {"type": "integer"},
    {"type": ["number", "null"]},
    {"not": {"type": "integer"}},
    {"not": {"type": "number"}},
    {"enum": [1, "a", None]},
    {"not": {"enum": [1, "a", None]}},
    {"not": {"enum": [True]}},
    {"not": {"minimum": 1}},
    {"not": {"maximum": 1}},
    {"not": {"minLength": 1}},
    {"not": {"maxLength": 0}},
    {"not": {"pattern": "^a$"}},
    {"not": {"not": {"pattern": "^a$"}}},
    {"not": {"format": "regex"}},
    {"not": {"required": ["a"]}},
    {"not": {"properties": {"a": {"type": "string"}}}},
    {"not": {"additionalProperties": False}},
    {"not": {"propertyNames": {"maxLength": 0}}},
    {"not": {"items": {"type": "integer"}}},
    {"not": {"minItems": 1}},
    {"not": {"maxProperties": 0}},
    {"properties": {"a": True, "b": False}, "additionalProperties": {"type": "integer"}},
    {"not": {"$ref": "t#/definitions/d"}, "definitions": {"d": {"type": "string"}}},
    # draft 7: beside $ref, "type" is ignored
    {"$ref": "#/definitions/d", "type": "string", "definitions": {"d": {"type": "integer"}}},
]
# Schemas with something it leaves to jsonschema: it must never answer "valid" wrongly.
OTHER_SCHEMAS: list[dict] = [
    {"enum": [[1], {"a": 1}]},
    {"not": {"enum": [[1], {"a": 1}]}},
    {"not": {"anyOf": [{"type": "string"}]}},
    {"anyOf": [{"type": "string"}, {"type": "null"}]},
    {"not": {"const": 1}},
    {"not": {"format": "email"}},
    {"properties": {"a": {"$ref": "#"}}},  # recursive
    {"type": ["array", "integer"], "items": {"$ref": "#"}},  # recursive
    {"properties": {"a": {"$id": "inner", "type": "string"}}},
    {"patternProperties": {"^a": {"type": "string"}}},
    {"not": {"$ref": "elsewhere"}},
]
SCHEMA_SAMPLES = EXACT_SCHEMAS + OTHER_SCHEMAS


@pytest.mark.parametrize("schema", SCHEMA_SAMPLES)
def test_compiled_schemas_never_accept_more(schema: dict) -> None:
    validator = validator_for(schema)
    for instance in JSON_SAMPLES:
        try:
            answers(instance, "t", validator)
        except Exception as exc:  # jsonschema itself may fail on an unresolvable $ref
            assert not validator._valid_at_a_glance(instance, "t"), exc


@pytest.mark.parametrize("schema", EXACT_SCHEMAS)
def test_handled_keywords_answer_exactly(schema: dict) -> None:
    validator = validator_for(schema)
    for instance in JSON_SAMPLES:
        fast, full = answers(instance, "t", validator)
        assert fast == full, instance


# --- generated documents ---------------------------------------------------------------------

# Text from a short alphabet that hits the schemas' edges (control characters, newlines, lone
# surrogates, SIP's token characters, regex syntax), and values at or past the bounds.
ALPHABET = [*"aZ09+*#._-!%`'~ /:@,;[]^\\()?=${}|é☎\n\r\t\x00\x7f", "\ud800", "\udfff"]
TEXT = st.one_of(
    st.lists(st.sampled_from(ALPHABET), max_size=12).map("".join),
    st.sampled_from([
        "", "Sales", "1001", "1001\n", "X-Foo", "X-Foo\n", "Via", "via", "f", "X", "X-Via",
        "Content-Length", "contact", "extension", "true", "false", "^\\+1", "(a)\\1", "(?=a)",
        "[", "a{1001}", "(a+)+$", "^sip:.*$", "a" * 64, "a" * 65, "a" * 128, "a" * 129,
        "x" * 512, "x" * 513, "v" * 1024, "v" * 1025,
    ]),
)
NUMBERS = st.one_of(st.integers(-2, 700), st.sampled_from(
    [30.0, 1.0, 0.5, 600.5, float("nan"), float("inf"), -float("inf"), 10**20]))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(TEXT, inner, max_size=3), max_leaves=8)
HEADER_NAMES = st.one_of(TEXT, st.sampled_from(["X-Foo", "in", "out", "P-Asserted-Identity"]))
HEADER_MAP = st.dictionaries(HEADER_NAMES, st.one_of(TEXT, JSON), max_size=4)
SIP_HEADERS = st.dictionaries(HEADER_NAMES, st.one_of(TEXT, HEADER_MAP, JSON), max_size=4)
CAVS = st.dictionaries(st.one_of(TEXT, st.sampled_from(["campaign", "ref-id_2"])),
                       st.one_of(TEXT, JSON), max_size=4)
LIKELY = {
    "auth_required": st.booleans(),
    "bypass_media": st.booleans(),
    "custom_application_vars": CAVS,
    "custom_sip_headers": SIP_HEADERS,
    "dial_first": st.sampled_from(["extension", "contact", "Contact", ""]),
    "media": st.dictionaries(st.just("ignore_early_media"), st.one_of(st.booleans(), JSON)),
    "music_on_hold": st.dictionaries(st.just("media_id"), st.one_of(TEXT, JSON)),
    "throttle": NUMBERS,
    "timeout": NUMBERS,
    "whitelist": st.lists(TEXT, max_size=4),
}
DOCS = st.fixed_dictionaries(
    {"name": TEXT, "extension": TEXT},
    optional={
        **{key: st.one_of(LIKELY.get(key, TEXT), JSON) for key in PROPS
           if key not in ("name", "extension")},
        "other": JSON,
    },
)


def check_validate(doc: Any, schema: str = "clicktocall") -> None:
    """validate() answers as jsonschema does, fills defaults as the old deepcopy-and-fill
    did, and leaves its input alone."""
    _fast, full = answers(doc, schema)
    before = copy.deepcopy(doc)
    try:
        out = VALIDATOR.validate(doc, schema)
    except ValidationFailed:
        assert not full
    else:
        assert full
        assert out == filled_the_old_way(doc, schema)
        assert out is not doc
    assert repr(doc) == repr(before)  # repr: NaN != NaN


def filled_the_old_way(doc: dict, schema: str) -> dict:
    filled = copy.deepcopy(doc)
    resolver = VALIDATOR._resolvers[schema]

    def fill(schema: dict, instance: Any, resolver: Any) -> None:
        if "$ref" in schema:
            resolved = resolver.lookup(schema["$ref"])
            fill(resolved.contents, instance, resolved.resolver)
            return
        if not isinstance(instance, dict):
            return
        for key, sub in schema.get("properties", {}).items():
            if key in instance:
                fill(sub, instance[key], resolver)
            elif "default" in sub:
                instance[key] = copy.deepcopy(sub["default"])

    fill(SCHEMAS[schema], filled, resolver)
    return filled


@GENERATED
@given(DOCS)
def test_generated_click_to_calls(doc: dict) -> None:
    check_validate(doc)


@GENERATED
@given(st.fixed_dictionaries({"name": st.just("Sales"), "extension": st.just("1001")},
                             optional={key: LIKELY[key] for key in LIKELY}))
def test_generated_likely_valid_click_to_calls(doc: dict) -> None:
    check_validate(doc)


@GENERATED
@given(SIP_HEADERS)
def test_generated_sip_headers(doc: dict) -> None:
    check_validate(doc, "custom_sip_headers")


@GENERATED
@given(st.fixed_dictionaries({}, optional={
    "contact": TEXT,
    "blocking": st.one_of(st.booleans(), st.sampled_from(["true", "false", "TRUE", 1, 0, 1.0]),
                          JSON),
    "custom_application_vars": CAVS,
}))
def test_generated_connect_requests(doc: dict) -> None:
    check_validate(doc, "connect")


@GENERATED
@given(st.sampled_from(EXACT_SCHEMAS), JSON)
def test_generated_values_against_small_schemas(schema: dict, instance: Any) -> None:
    fast, full = answers(instance, "t", validator_for(schema))
    assert fast == full


# --- defaults: copy on write ------------------------------------------------------------------


def test_defaults_do_not_touch_the_input_and_share_what_they_do_not_change() -> None:
    doc = {**MINIMAL, "whitelist": ["^\\+1"], "media": {}, "custom_sip_headers": {"X-A": "1"}}
    before = copy.deepcopy(doc)
    out = VALIDATOR.validate(doc)
    assert doc == before
    assert out["media"] == {"ignore_early_media": True} and doc["media"] == {}
    assert out["whitelist"] is doc["whitelist"]
    assert out["custom_sip_headers"] is doc["custom_sip_headers"]


def test_a_complete_document_is_still_a_new_dict() -> None:
    doc = VALIDATOR.validate(MINIMAL)
    again = VALIDATOR.validate(doc)
    assert again == doc and again is not doc
