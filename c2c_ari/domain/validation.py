"""JSON Schema validation of documents, answering in Kazoo's error shape and filling defaults."""

from __future__ import annotations

import copy
import functools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator, FormatChecker, ValidationError, validators
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from c2c_ari.domain.errors import FieldErrors, ValidationFailed
from c2c_ari.domain.whitelist import compile_regex

SCHEMAS_ENV = "C2C_ARI_SCHEMAS_DIR"


def schemas_dir() -> Path:
    """Where the schema files live: $C2C_ARI_SCHEMAS_DIR, the installed copy, or the repo's."""
    override = os.environ.get(SCHEMAS_ENV)
    if override:
        return Path(override)
    here = Path(__file__).resolve()
    installed = here.parents[1] / "schemas"
    return installed if installed.is_dir() else here.parents[2] / "schemas"


@functools.lru_cache(maxsize=8)
def _load(directory: Path) -> dict[str, dict]:
    return {
        path.stem: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(directory.glob("*.json"))
    }


def load_schemas(directory: Path | None = None) -> dict[str, dict]:
    """Schema name (file name without .json) -> document; cached, so do not mutate."""
    return _load((directory or schemas_dir()).resolve())


# --- keywords: RE2 instead of Python's re ---------------------------------------------------
# Python's `$` also matches before a trailing "\n", which would let "X-Foo\n" through a
# `^token$` pattern; RE2's `$` is end of text (as in ECMAScript) and its time is linear.


@functools.lru_cache(maxsize=256)
def _schema_regex(pattern: str) -> Any:
    return compile_regex(pattern)


def _pattern(
    validator: Any, pattern: str, instance: Any, schema: dict
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "string"):
        return
    try:
        matched = _schema_regex(pattern).search(instance) is not None
    except UnicodeError:  # lone surrogates cannot be valid text anyway
        matched = False
    if not matched:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _property_names(
    validator: Any, names: dict, instance: Any, schema: dict
) -> Iterator[ValidationError]:
    # One error per bad name, located at that name (the stock keyword reports the parent).
    if not validator.is_type(instance, "object"):
        return
    for name in instance:
        failures = list(validator.descend(instance=name, schema=names))
        if failures:
            yield ValidationError("property name not allowed", path=[name], context=failures)


def _is_integer(_checker: Any, instance: Any) -> bool:
    # 30.0 is not an integer here: stored documents keep exactly the types the schema names
    return isinstance(instance, int) and not isinstance(instance, bool)


_Validator = validators.extend(
    Draft7Validator,
    {"pattern": _pattern, "propertyNames": _property_names},
    type_checker=Draft7Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)

_FORMATS = FormatChecker(formats=())


@_FORMATS.checks("regex", raises=ValueError)
def _is_regex(instance: object) -> bool:
    if isinstance(instance, str):
        _schema_regex(instance)  # raises ValueError with RE2's reason; valid ones are cached
    return True


# --- Kazoo's error messages ---------------------------------------------------------------

_STRICT = "Strict checking of data is enabled; only include schema-defined properties"

# keyword -> Kazoo's text; "{}" is the schema's value for the keyword, also sent as "target"
_TARGETED = {
    "minLength": "String must be at least {} characters",
    "maxLength": "String must not be more than {} characters",
    "minimum": "Value must be at least {}",
    "maximum": "Value must be at most {}",
    "minItems": "The list must have at least {} items",
    "maxItems": "The list is more than {} items",
    "minProperties": "The object must have at least {} keys",
    "maxProperties": "The object must have at most {} keys",
    "enum": "Value not found in enumerated list of values",
    "type": "Value did not match type(s): {}",
    "pattern": "Failed to match pattern '{}'",
}
_UNTARGETED = {"required": "Field is required but missing", "additionalProperties": _STRICT}
# a bad property name is reported the way Kazoo reports it: as a property not allowed
_KEYWORD_ALIASES = {"propertyNames": "additionalProperties"}


def _describe(error: ValidationError) -> dict[str, Any]:
    keyword, value = str(error.validator), error.validator_value
    if keyword == "format":
        message = f"Value is not a valid regular expression: {error.cause}"
        if value != "regex":
            message = "Field is not in the correct format"
        return {"message": message, "target": value}
    if keyword == "propertyNames":
        patterns = [sub.validator_value for sub in error.context if sub.validator == "pattern"]
        return {"message": _STRICT, **({"target": patterns[0]} if patterns else {})}
    if keyword in _UNTARGETED:
        return {"message": _UNTARGETED[keyword]}
    if keyword not in _TARGETED:
        return {"message": "failed to validate"}  # Kazoo's words for anything else
    if keyword == "type" and not isinstance(value, str):
        value = ", ".join(value)
    return {"message": _TARGETED[keyword].format(value), "target": value}


def _escape(part: object) -> str:
    # Kazoo escapes dots inside keys as %2E; control characters get the same treatment
    # so a hostile key cannot put a raw newline into an error (or a log line)
    return "".join(f"%{ord(c):02X}" if c == "." or c < " " or c == "\x7f" else c for c in str(part))


def _field(path: Any) -> str:
    # a failure of the document itself (not an object) is reported on "data"
    return ".".join(_escape(part) for part in path) or "data"


def _kazoo_errors(errors: Iterator[ValidationError]) -> FieldErrors:
    out: FieldErrors = {}
    for error in errors:
        keyword = str(error.validator)
        if keyword == "required":
            # one entry per missing property, at that property's path (Kazoo's choice)
            for name in error.validator_value:
                if name not in error.instance:
                    field = _field([*error.absolute_path, name])
                    out.setdefault(field, {})["required"] = _describe(error)
            continue
        field = _field(error.absolute_path)
        out.setdefault(field, {})[_KEYWORD_ALIASES.get(keyword, keyword)] = _describe(error)
    return out


class DocumentValidator:
    """Validates documents against the project's schemas; built once, then reused."""

    def __init__(self, schemas: dict[str, dict] | None = None) -> None:
        schemas = load_schemas() if schemas is None else schemas
        for schema in schemas.values():
            Draft7Validator.check_schema(schema)
        # Without "$schema", jsonschema cannot swap our RE2 keywords for stock Draft7 ones when
        # it follows a $ref into another file (it picks the class from that key).
        schemas = {
            name: {k: v for k, v in schema.items() if k != "$schema"}
            for name, schema in schemas.items()
        }
        self._registry: Registry = Registry().with_resources(
            (schema.get("$id", name), Resource.from_contents(schema, default_specification=DRAFT7))
            for name, schema in schemas.items()
        )
        self._validators = {
            name: _Validator(schema, registry=self._registry, format_checker=_FORMATS)
            for name, schema in schemas.items()
        }

    def validate(self, doc: dict, schema: str = "clicktocall") -> dict:
        """Return a copy of `doc` with schema defaults filled in, or raise ValidationFailed."""
        validator = self._validators[schema]
        errors = _kazoo_errors(validator.iter_errors(doc))
        if errors:
            raise ValidationFailed(errors)
        filled = copy.deepcopy(doc)
        resolver = self._registry.resolver(base_uri=validator.schema.get("$id", ""))
        _fill_defaults(validator.schema, filled, resolver)
        return filled


def _fill_defaults(schema: dict, instance: Any, resolver: Any) -> None:
    """Set missing properties that have a default, recursing only into objects present.

    That is what Kazoo does: `media: {}` gains `ignore_early_media`, an absent `media` stays
    absent.
    """
    if "$ref" in schema:
        resolved = resolver.lookup(schema["$ref"])
        _fill_defaults(resolved.contents, instance, resolved.resolver)
        return
    if not isinstance(instance, dict):
        return
    for key, sub in schema.get("properties", {}).items():
        if key in instance:
            _fill_defaults(sub, instance[key], resolver)
        elif "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])


@functools.lru_cache(maxsize=1)
def default_validator() -> DocumentValidator:
    """The process-wide validator over the schemas in `schemas_dir()`, built on first use."""
    return DocumentValidator()


__all__ = [
    "SCHEMAS_ENV",
    "DocumentValidator",
    "default_validator",
    "load_schemas",
    "schemas_dir",
]
