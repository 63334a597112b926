"""The JSON schemas and the DocumentValidator built from them."""

from __future__ import annotations

from pathlib import Path

import pytest
from jsonschema import Draft7Validator

from c2c_ari.domain.errors import ValidationFailed
from c2c_ari.schemas import (
    DocumentValidator,
    default_validator,
    load_schemas,
    schemas_dir,
)

SCHEMAS = load_schemas()
C2C = SCHEMAS["clicktocall"]
PROPS = C2C["properties"]
HEADERS = SCHEMAS["custom_sip_headers"]
MINIMAL = {"name": "Sales", "extension": "1001"}


def errors_of(doc: dict, schema: str = "clicktocall") -> dict:
    with pytest.raises(ValidationFailed) as caught:
        default_validator().validate(doc, schema)
    assert caught.value.message == "validation error"
    return caught.value.errors


def valid(**extra: object) -> dict:
    return default_validator().validate({**MINIMAL, **extra})


# --- the schema documents -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["clicktocall", "custom_sip_headers"])
def test_schema_is_valid_draft7(name: str) -> None:
    schema = SCHEMAS[name]
    Draft7Validator.check_schema(schema)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["$id"] == name
    assert schema["title"] and schema["description"]


def test_schemas_dir_points_at_the_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert (schemas_dir() / "clicktocall.json").is_file()
    monkeypatch.setenv("C2C_ARI_SCHEMAS_DIR", str(tmp_path))
    assert schemas_dir() == tmp_path


def test_every_property_is_labelled() -> None:
    def walk(schema: dict, where: str) -> None:
        for key, sub in schema.get("properties", {}).items():
            assert sub.get("title") and sub.get("description"), f"{where}.{key}"
            walk(sub, f"{where}.{key}")

    walk(C2C, "clicktocall")
    walk(HEADERS, "custom_sip_headers")


def test_top_level_is_open_and_requires_name_and_extension() -> None:
    assert C2C["type"] == "object"
    assert "additionalProperties" not in C2C
    assert sorted(C2C["required"]) == ["extension", "name"]


SPEC_TABLE = {
    "name": {"type": "string", "minLength": 1, "maxLength": 128},
    "extension": {"type": "string", "minLength": 1, "maxLength": 64},
    "auth_required": {"type": "boolean", "default": True},
    "bypass_media": {"type": "boolean"},
    "caller_id_number": {"type": "string"},
    "custom_application_vars": {"type": "object", "default": {}},
    "dial_first": {"type": "string", "enum": ["extension", "contact"], "default": "extension"},
    "media": {"type": "object"},
    "music_on_hold": {"type": "object"},
    "outbound_callee_id_name": {"type": "string"},
    "outbound_callee_id_number": {"type": "string"},
    "presence_id": {"type": "string"},
    "ringback": {"type": "string"},
    "throttle": {"type": "integer", "minimum": 1},
    "timeout": {"type": "integer", "minimum": 1, "default": 30},
    "whitelist": {"type": "array"},
}


@pytest.mark.parametrize(("key", "expected"), SPEC_TABLE.items())
def test_spec_table_key(key: str, expected: dict) -> None:
    prop = PROPS[key]
    for attr, value in expected.items():
        assert prop[attr] == value, (key, attr)


def test_nested_spec_keys() -> None:
    assert PROPS["media"]["properties"]["ignore_early_media"]["type"] == "boolean"
    assert PROPS["media"]["properties"]["ignore_early_media"]["default"] is True
    media_id = PROPS["music_on_hold"]["properties"]["media_id"]
    assert (media_id["type"], media_id["minLength"], media_id["maxLength"]) == ("string", 0, 2048)
    item = PROPS["whitelist"]["items"]
    assert (item["type"], item["minLength"], item["format"]) == ("string", 1, "regex")
    assert "default" not in PROPS["throttle"]  # absent = unlimited
    assert PROPS["custom_sip_headers"]["$ref"] == "custom_sip_headers"
    assert set(HEADERS["properties"]) == {"in", "out"}
    assert PROPS["custom_application_vars"]["additionalProperties"]["type"] == "string"


def test_string_bounds_are_sane() -> None:
    for key in (
        "caller_id_number",
        "outbound_callee_id_name",
        "outbound_callee_id_number",
        "presence_id",
        "ringback",
    ):
        assert 0 < PROPS[key]["maxLength"] <= 256
        assert "pattern" in PROPS[key]


# --- defaults ---------------------------------------------------------------------------


def test_defaults_filled_and_input_untouched() -> None:
    doc = dict(MINIMAL)
    out = default_validator().validate(doc)
    assert out == {
        **MINIMAL,
        "auth_required": True,
        "custom_application_vars": {},
        "dial_first": "extension",
        "timeout": 30,
    }
    assert doc == MINIMAL
    assert out is not doc


def test_given_values_win_over_defaults() -> None:
    out = valid(auth_required=False, timeout=45, dial_first="contact")
    assert (out["auth_required"], out["timeout"], out["dial_first"]) == (False, 45, "contact")


def test_nested_defaults_only_when_parent_present() -> None:
    assert "media" not in valid()
    assert valid(media={})["media"] == {"ignore_early_media": True}
    assert valid(media={"ignore_early_media": False})["media"] == {"ignore_early_media": False}


def test_default_objects_are_not_shared() -> None:
    first = valid()
    first["custom_application_vars"]["x"] = "y"
    assert valid()["custom_application_vars"] == {}


def test_unknown_top_level_keys_are_kept() -> None:
    out = valid(custom="value", nested={"a": [1, 2]})
    assert out["custom"] == "value" and out["nested"] == {"a": [1, 2]}


# --- Kazoo-shaped errors ----------------------------------------------------------------


def test_required_errors_exact() -> None:
    assert errors_of({}) == {
        "name": {"required": {"message": "Field is required but missing"}},
        "extension": {"required": {"message": "Field is required but missing"}},
    }


def test_max_length_error_exact() -> None:
    assert errors_of({**MINIMAL, "name": "x" * 129}) == {
        "name": {
            "maxLength": {"message": "String must not be more than 128 characters", "target": 128}
        }
    }


def test_min_length_error() -> None:
    assert errors_of({**MINIMAL, "name": ""})["name"] == {
        "minLength": {"message": "String must be at least 1 characters", "target": 1}
    }


def test_all_errors_reported_at_once() -> None:
    errors = errors_of({"name": 5, "timeout": 0, "throttle": 0, "dial_first": "x"})
    assert errors["name"]["type"] == {
        "message": "Value did not match type(s): string",
        "target": "string",
    }
    assert errors["extension"]["required"]
    assert errors["timeout"]["minimum"] == {"message": "Value must be at least 1", "target": 1}
    assert errors["throttle"]["minimum"]["target"] == 1
    assert errors["dial_first"]["enum"] == {
        "message": "Value not found in enumerated list of values",
        "target": ["extension", "contact"],
    }


def test_maximum_and_integer_strictness() -> None:
    assert errors_of({**MINIMAL, "timeout": 601})["timeout"] == {
        "maximum": {"message": "Value must be at most 600", "target": 600}
    }
    assert "type" in errors_of({**MINIMAL, "timeout": 30.0})["timeout"]
    assert "type" in errors_of({**MINIMAL, "throttle": True})["throttle"]


@pytest.mark.parametrize("value", ["auto", "true", "false", 1])
def test_bypass_media_is_boolean_only(value: object) -> None:
    assert "type" in errors_of({**MINIMAL, "bypass_media": value})["bypass_media"]
    assert valid(bypass_media=True)["bypass_media"] is True


@pytest.mark.parametrize("extension", ["1001", "+15551234567", "*97", "#1", "sales.team_1-a"])
def test_extension_allowed(extension: str) -> None:
    assert valid(extension=extension)["extension"] == extension


@pytest.mark.parametrize(
    "extension", ["10 01", "1001&PJSIP/evil", "a,b", "a/b", "a;b", "a@b", "1001\n", "x" * 65]
)
def test_extension_refused(extension: str) -> None:
    assert set(errors_of({**MINIMAL, "extension": extension})) == {"extension"}


def test_pattern_error_shape() -> None:
    assert errors_of({**MINIMAL, "extension": "1 2"})["extension"] == {
        "pattern": {
            "message": "Failed to match pattern '^[A-Za-z0-9+*#._-]+$'",
            "target": "^[A-Za-z0-9+*#._-]+$",
        }
    }


@pytest.mark.parametrize("value", ["a\r\nb", "a\nb", "ab\n", "\x00", "a\tb", "\x7f", "\x1b[2J"])
@pytest.mark.parametrize("key", ["name", "caller_id_number", "presence_id", "ringback"])
def test_control_characters_refused(key: str, value: str) -> None:
    assert "pattern" in errors_of({**MINIMAL, key: value})[key]


def test_unicode_text_allowed() -> None:
    assert valid(name="Zürich ☎ 東京")["name"] == "Zürich ☎ 東京"


def test_lone_surrogate_is_an_error_not_a_crash() -> None:
    assert "pattern" in errors_of({**MINIMAL, "name": "a\ud800"})["name"]


# --- custom_application_vars --------------------------------------------------------------


def test_custom_application_vars() -> None:
    cavs = {"campaign": "spring", "ref-id_2": "x y"}
    assert valid(custom_application_vars=cavs)["custom_application_vars"] == cavs
    errors = errors_of({**MINIMAL, "custom_application_vars": {"bad key": "v", "ok": "a\nb"}})
    assert errors["custom_application_vars.bad key"]["additionalProperties"]["message"].startswith(
        "Strict checking"
    )
    assert "pattern" in errors["custom_application_vars.ok"]
    assert (
        "type"
        in errors_of({**MINIMAL, "custom_application_vars": {"n": 1}})["custom_application_vars.n"]
    )


# --- custom_sip_headers -------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Foo": "bar", "x-lower": "", "P-Asserted-Identity": "<sip:1@example.com>"},
        {"X`Tick": "ok", "X.Dot!%*_+'~": "ok"},
        {"in": {"X-In": "1"}, "out": {"X-Out": "2"}},
        {"in": {}},
        {"out": {"X-Out": "2"}, "X-Legacy": "flat"},
    ],
)
def test_custom_sip_headers_accepted(headers: dict) -> None:
    assert valid(custom_sip_headers=headers)["custom_sip_headers"] == headers
    default_validator().validate(headers, "custom_sip_headers")


@pytest.mark.parametrize("name", ["X[Foo]", "X]", "X^Y", "X\\Y", "X Y", "X:Y", "X\nY", "", "é"])
def test_bad_header_names(name: str) -> None:
    for headers, prefix in (
        ({name: "v"}, "custom_sip_headers"),
        ({"out": {name: "v"}}, "custom_sip_headers.out"),
    ):
        errors = errors_of({**MINIMAL, "custom_sip_headers": headers})
        assert len(errors) == 1
        ((field, problem),) = errors.items()
        assert field.startswith(prefix + ".")
        assert set(problem) == {"additionalProperties"}


def test_bad_header_name_field_path_is_escaped() -> None:
    errors = errors_of({**MINIMAL, "custom_sip_headers": {"X\r\nInjected": "v", "a.b c": "v"}})
    assert set(errors) == {"custom_sip_headers.X%0D%0AInjected", "custom_sip_headers.a%2Eb c"}


@pytest.mark.parametrize("value", ["a\r\nX-Evil: 1", "a\n", "a\r", "\x00", "a\tb", "\x7f"])
def test_bad_header_values(value: str) -> None:
    errors = errors_of({**MINIMAL, "custom_sip_headers": {"X-Foo": value, "in": {"X-Bar": value}}})
    assert set(errors) == {"custom_sip_headers.X-Foo", "custom_sip_headers.in.X-Bar"}
    assert all(set(e) == {"pattern"} for e in errors.values())


def test_in_and_out_must_be_header_maps() -> None:
    errors = errors_of({**MINIMAL, "custom_sip_headers": {"in": "X-Foo", "out": {"in": {}}}})
    assert errors["custom_sip_headers.in"]["type"]["target"] == "object"
    assert errors["custom_sip_headers.out.in"]["type"]["target"] == "string"


def test_header_value_too_long_and_too_many() -> None:
    errors = errors_of({**MINIMAL, "custom_sip_headers": {"X-Foo": "v" * 1025}})
    assert errors["custom_sip_headers.X-Foo"]["maxLength"]["target"] == 1024
    many = {f"X-{i}": "v" for i in range(33)}
    assert (
        "maxProperties" in errors_of({**MINIMAL, "custom_sip_headers": many})["custom_sip_headers"]
    )


# --- whitelist ----------------------------------------------------------------------------


def test_whitelist_valid_patterns() -> None:
    wl = ["^\\+1555", "^\\+44[0-9]{9,10}$", "^sip:.*@example\\.com$"]
    assert valid(whitelist=wl)["whitelist"] == wl
    assert valid(whitelist=[])["whitelist"] == []


def test_whitelist_backreference_is_a_format_error() -> None:
    errors = errors_of({**MINIMAL, "whitelist": ["(a)\\1"]})
    assert set(errors) == {"whitelist.0"}
    problem = errors["whitelist.0"]["format"]
    assert problem["message"].startswith("Value is not a valid regular expression: ")
    assert "\\1" in problem["message"]


@pytest.mark.parametrize("pattern", ["(?=a)", "(?!a)", "(?<=a)b", "[", "a{1001}"])
def test_whitelist_patterns_re2_refuses(pattern: str) -> None:
    assert "format" in errors_of({**MINIMAL, "whitelist": ["^ok$", pattern]})["whitelist.1"]


def test_whitelist_patterns_hostile_to_backtracking_are_kept_as_written() -> None:
    # Exponential for a backtracking engine, plain patterns for RE2: accepted, unchanged.
    hostile = ["(a+)+$", "(x+x+)+y", "(.*a){20}"]
    assert valid(whitelist=hostile)["whitelist"] == hostile


def test_whitelist_bounds() -> None:
    assert "minLength" in errors_of({**MINIMAL, "whitelist": [""]})["whitelist.0"]
    assert "maxLength" in errors_of({**MINIMAL, "whitelist": ["a" * 513]})["whitelist.0"]
    assert errors_of({**MINIMAL, "whitelist": ["a"] * 101})["whitelist"] == {
        "maxItems": {"message": "The list is more than 100 items", "target": 100}
    }
    assert "type" in errors_of({**MINIMAL, "whitelist": [5]})["whitelist.0"]


# --- the validator object -----------------------------------------------------------------


def test_validator_from_explicit_schemas() -> None:
    validator = DocumentValidator(load_schemas(schemas_dir()))
    assert validator.validate(MINIMAL)["timeout"] == 30


def test_not_an_object() -> None:
    assert errors_of([1])["data"]["type"]["target"] == "object"  # type: ignore[arg-type]


@pytest.mark.parametrize("char", ["\x85", "\x9f", "\x7f", "\u2028", "\u2029", "\r", "\x00"])
def test_no_control_character_or_line_separator_in_text(char: str) -> None:
    # C0, DEL and C1 controls and the Unicode line/paragraph separators: some SIP stacks and
    # log readers take them for line breaks.
    assert "name" in errors_of({**MINIMAL, "name": f"a{char}b"})
    errors = errors_of({**MINIMAL, "custom_sip_headers": {"X-A": f"a{char}b"}})
    assert "custom_sip_headers.X-A" in errors
    errors = errors_of({**MINIMAL, "custom_application_vars": {"k": f"a{char}b"}})
    assert "custom_application_vars.k" in errors
    assert errors_of({"custom_application_vars": {"k": f"a{char}b"}}, "connect")


@pytest.mark.parametrize("ringback", ["a,b", "tone:ring", "ring;tonezone=fr,x",
                                      "%(2000,4000)", "440+480/2000,,0/4000", "RING"])
def test_a_ringback_that_could_not_be_played_is_refused(ringback: str) -> None:
    assert "ringback" in errors_of({**MINIMAL, "ringback": ringback})


@pytest.mark.parametrize("ringback", ["", "ring", "busy;tonezone=de", "%(2000,4000,440,480)",
                                      "440+480/2000,0/4000", "!350+440/100|!0/100"])
def test_ringbacks_that_can_be_played(ringback: str) -> None:
    assert valid(ringback=ringback)["ringback"] == ringback


def test_throttle_has_a_maximum() -> None:
    assert "throttle" in errors_of({**MINIMAL, "throttle": 10_001})
    assert valid(throttle=10_000)["throttle"] == 10_000
