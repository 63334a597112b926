"""JSON Schema validation of documents, answering in Kazoo's error shape and filling defaults."""

from __future__ import annotations

import copy
import functools
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import re2
from jsonschema import Draft7Validator, FormatChecker, ValidationError, validators
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from c2c_ari.domain.errors import FieldErrors, ValidationFailed
from c2c_ari.domain.whitelist import compile_pattern

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


_SCHEMA_REGEX_OPTIONS = re2.Options()
_SCHEMA_REGEX_OPTIONS.log_errors = False


@functools.lru_cache(maxsize=256)
def _schema_regex(pattern: str) -> Any:
    """A `pattern` keyword of our own schemas (trusted, few): RE2 in UTF-8 mode."""
    return re2.compile(pattern, _SCHEMA_REGEX_OPTIONS)


def _matches(pattern: str, text: str) -> bool:
    try:
        return _schema_regex(pattern).search(text) is not None
    except UnicodeError:  # lone surrogates cannot be valid text anyway
        return False


def _pattern(
    validator: Any, pattern: str, instance: Any, schema: dict
) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _matches(pattern, instance):
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
        compile_pattern(instance)  # raises ValueError with RE2's reason; both are remembered
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


# --- the fast path: a yes-or-no answer for documents that are valid ---------------------------
# jsonschema takes ~40 us for a small click-to-call, most of it in building error objects and
# descending generically. The checks below are compiled once from the same schemas into plain
# closures and answer only "valid" (a few us). They are never the last word on a refusal:
# `DocumentValidator.validate` runs jsonschema whenever they say anything but "valid", and
# jsonschema then decides and writes Kazoo's messages. So the one rule for this code is that
# it may never call valid what jsonschema refuses. To keep that easy to see:
#   - each check answers exactly as our jsonschema validator does (same keywords' meaning,
#     same integers as `_is_integer`, the same RE2 answers as `_matches` and `_compiles`),
#     or raises _Unsure; being exact, a check can be negated ("not");
#   - any keyword not handled here, a value that is not a plain JSON value (a subclass, a
#     tuple, a Decimal...), a nested "$id" or a recursive "$ref" raises _Unsure.
# tests/unit/test_fast_validation.py compares both answers over many documents.


class _Unsure(Exception):
    """The fast check cannot tell; jsonschema decides."""


_Check = Callable[[Any], bool]

# The JSON kind of a plain JSON value, by its exact Python type.
_KINDS: dict[type, str] = {
    dict: "object", list: "array", str: "string", int: "integer", float: "number",
    bool: "boolean", type(None): "null",
}
# Kinds each "type" name admits: an integer is also a number; 30.0 is a number only.
_TYPE_KINDS: dict[str, frozenset[str]] = {
    "object": frozenset({"object"}), "array": frozenset({"array"}),
    "string": frozenset({"string"}), "integer": frozenset({"integer"}),
    "number": frozenset({"integer", "number"}), "boolean": frozenset({"boolean"}),
    "null": frozenset({"null"}),
}
_ALL_KINDS = frozenset(_KINDS.values())
_STRINGS, _NUMBERS, _OBJECTS, _ARRAYS = ("string",), ("integer", "number"), ("object",), ("array",)
# Keywords that do not take part in validation (definitions are reached through $ref).
_ANNOTATIONS = frozenset({
    "$schema", "$comment", "title", "description", "default", "examples", "definitions",
    "readOnly", "writeOnly",
})


def _valid(_instance: Any) -> bool:
    return True


def _invalid(_instance: Any) -> bool:
    return False


def _unsure(_instance: Any) -> bool:
    raise _Unsure


def _enum_check(values: Any) -> _Check | None:
    """jsonschema's enum equality on JSON values: a bool equals only a bool, 1 equals 1.0.
    None when the enum holds something that is not a plain JSON value."""
    if not isinstance(values, list) or not all(type(v) in _KINDS for v in values):
        return None
    has_containers = any(isinstance(v, dict | list) for v in values)

    def key(value: Any) -> tuple[str, Any]:
        kind = _KINDS[type(value)]
        return ("number" if kind == "integer" else kind, value)

    scalars = {key(v) for v in values if not isinstance(v, dict | list)}

    def check(instance: Any) -> bool:
        if isinstance(instance, dict | list):
            if has_containers:
                raise _Unsure  # comparing containers is left to jsonschema
            return False  # a container never equals a scalar
        return key(instance) in scalars

    return check


@functools.lru_cache(maxsize=256)
def _quick_search(pattern: str) -> Callable[[str], Any]:
    """The same RE2 pattern with the same options as `_schema_regex`, searched through
    RE2::Set, which only says whether it matched (0.7 us instead of the 4 us it takes to build
    a match object). A match it reports is there; but it may miss one (it gives up when its
    DFA runs out of memory), so `_pattern_check` asks `_matches` whenever it says no."""
    matcher = re2.Set.SearchSet(_schema_regex(pattern).options)
    matcher.Add(pattern)
    matcher.Compile()
    return matcher.Match


def _compiles(text: str) -> bool:
    """`format: regex` as `_FORMATS` checks it, as a yes or no."""
    try:
        return _is_regex(text)
    except ValueError:
        return False


def _pattern_check(pattern: str) -> _Check:
    """Exactly `_matches(pattern, text)`, quicker when the text matches."""
    search = _quick_search(pattern)

    def check(text: str) -> bool:
        try:
            if search(text) is not None:
                return True
        except UnicodeError:  # as in _matches
            return False
        return _matches(pattern, text)  # RE2::Set may have given up: RE2 itself decides

    return check


class _FastCompiler:
    """Turns a schema into one _Check; `resolver` (from `referencing`) follows $ref."""

    def __init__(self) -> None:
        self._following: set[int] = set()  # the $ref targets being compiled: no recursion

    def compile(self, schema: Any, resolver: Any, resource_root: bool = False) -> _Check:
        if schema is True:
            return _valid
        if schema is False:
            return _invalid
        if not isinstance(schema, dict):
            return _unsure
        if "$ref" in schema:  # draft 7: every other keyword beside $ref is ignored
            return self._follow(schema["$ref"], resolver)
        if "$id" in schema and not resource_root:
            return _unsure  # a nested $id would change how its $refs resolve
        allowed = _ALL_KINDS
        checks: dict[str, list[_Check]] = {kind: [] for kind in _ALL_KINDS}

        def add(kinds: Iterable[str], check: _Check) -> None:
            for kind in kinds:
                checks[kind].append(check)

        for keyword, value in schema.items():
            if keyword in _ANNOTATIONS or keyword == "$id":
                continue
            made = self._keyword(keyword, value, schema, resolver)
            if made is None:
                return _unsure  # a keyword (or value) this does not handle
            if keyword == "type":
                allowed = made
            else:
                kinds, check = made
                add(kinds, check)
        by_kind = {kind: tuple(found) for kind, found in checks.items()}

        def check(instance: Any) -> bool:
            kind = _KINDS.get(type(instance))
            if kind is None:
                raise _Unsure
            if kind not in allowed:
                return False
            return all(one(instance) for one in by_kind[kind])

        return check

    def _follow(self, ref: Any, resolver: Any) -> _Check:
        try:
            resolved = resolver.lookup(ref)
        except Exception:  # jsonschema will report it
            return _unsure
        key = id(resolved.contents)
        if key in self._following:
            return _unsure  # a recursive schema: left to jsonschema
        self._following.add(key)
        try:
            return self.compile(resolved.contents, resolved.resolver, resource_root=True)
        finally:
            self._following.discard(key)

    def _keyword(self, keyword: str, value: Any, schema: dict, resolver: Any) -> Any:
        """For "type": the kinds it admits. For the others: (the kinds of instance the keyword
        applies to, the check). None when this keyword or value is not handled."""
        count = isinstance(value, int) and not isinstance(value, bool)
        number = count or isinstance(value, float)
        if keyword == "type":
            names = [value] if isinstance(value, str) else value
            if not isinstance(names, list) or not all(n in _TYPE_KINDS for n in names):
                return None
            return frozenset().union(*(_TYPE_KINDS[n] for n in names))
        if keyword == "enum":
            enum_check = _enum_check(value)
            return None if enum_check is None else (_ALL_KINDS, enum_check)
        if keyword == "not":
            inner = self.compile(value, resolver)
            return _ALL_KINDS, lambda instance: not inner(instance)
        # Each comparison is jsonschema's own, negated (`not x < minimum`), so that even NaN
        # gets the same answer.
        if keyword == "minLength" and count:
            return _STRINGS, lambda s: not len(s) < value
        if keyword == "maxLength" and count:
            return _STRINGS, lambda s: not len(s) > value
        if keyword == "pattern" and isinstance(value, str):
            try:
                return _STRINGS, _pattern_check(value)
            except (ValueError, re2.error):  # not a valid RE2 pattern: jsonschema reports it
                return None
        if keyword == "format" and value == "regex":  # the only format our validator checks
            return _STRINGS, _compiles
        if keyword == "minimum" and number:
            return _NUMBERS, lambda x: not x < value
        if keyword == "maximum" and number:
            return _NUMBERS, lambda x: not x > value
        if keyword == "required" and isinstance(value, list):
            return _OBJECTS, lambda d: all(name in d for name in value)
        if keyword == "minProperties" and count:
            return _OBJECTS, lambda d: not len(d) < value
        if keyword == "maxProperties" and count:
            return _OBJECTS, lambda d: not len(d) > value
        if keyword == "properties" and isinstance(value, dict):
            return _OBJECTS, self._members(schema, resolver)
        if keyword == "additionalProperties":
            # With "properties", which says which members are additional, both are checked
            # in one pass (above).
            return _OBJECTS, _valid if "properties" in schema else self._members(
                schema, resolver)
        if keyword == "propertyNames":
            name_check = self.compile(value, resolver)
            return _OBJECTS, lambda d: all(name_check(name) for name in d)
        if keyword == "items" and not isinstance(value, list):  # one schema for every item
            item_check = self.compile(value, resolver)
            return _ARRAYS, lambda a: all(item_check(item) for item in a)
        if keyword == "minItems" and count:
            return _ARRAYS, lambda a: not len(a) < value
        if keyword == "maxItems" and count:
            return _ARRAYS, lambda a: not len(a) > value
        return None

    def _members(self, schema: dict, resolver: Any) -> _Check:
        """"properties" and "additionalProperties" of one schema, in one pass over the
        members (there is no "patternProperties": that keyword makes the schema unsure)."""
        named = {name: self.compile(sub, resolver)
                 for name, sub in schema.get("properties", {}).items()}
        other = self.compile(schema.get("additionalProperties", True), resolver)

        def check(d: dict) -> bool:
            return all(named.get(name, other)(value) for name, value in d.items())

        return check


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
        # $refs resolve exactly as for the validators: against each schema's own $id.
        self._resolvers = {
            name: self._registry.resolver_with_root(
                Resource.from_contents(schema, default_specification=DRAFT7))
            for name, schema in schemas.items()
        }
        self._fast_checks = {
            name: _FastCompiler().compile(schema, self._resolvers[name], resource_root=True)
            for name, schema in schemas.items()
        }

    def validate(self, doc: dict, schema: str = "clicktocall") -> dict:
        """Return `doc` with schema defaults filled in, or raise ValidationFailed.

        The result is a new dict; below the top level, what gained no default is shared with
        `doc`, and `doc` itself is never changed."""
        if not self._valid_at_a_glance(doc, schema):
            # Not certainly valid: jsonschema decides, and words the errors Kazoo's way.
            errors = _kazoo_errors(self._validators[schema].iter_errors(doc))
            if errors:
                raise ValidationFailed(errors)
        filled = _with_defaults(self._validators[schema].schema, doc, self._resolvers[schema])
        return dict(filled) if filled is doc else filled

    def _valid_at_a_glance(self, doc: Any, schema: str) -> bool:
        try:
            return self._fast_checks[schema](doc)
        except _Unsure:
            return False


def _with_defaults(schema: Any, instance: Any, resolver: Any) -> Any:
    """`instance` with each missing property that has a default set, recursing only into
    objects present. That is what Kazoo does: `media: {}` gains `ignore_early_media`, an
    absent `media` stays absent.

    Copy on write, since defaults are only ever added: a dict that gains a default is copied
    first (and so is every dict above it); everything else is returned as it is. `instance`
    is never changed.
    """
    if not isinstance(schema, dict) or not isinstance(instance, dict):
        return instance
    if "$ref" in schema:
        resolved = resolver.lookup(schema["$ref"])
        return _with_defaults(resolved.contents, instance, resolved.resolver)
    out = instance
    for key, sub in schema.get("properties", {}).items():
        if key in instance:
            value = _with_defaults(sub, instance[key], resolver)
            if value is instance[key]:
                continue
        elif isinstance(sub, dict) and "default" in sub:
            value = sub["default"]
            if isinstance(value, dict | list):
                value = copy.deepcopy(value)  # never shared between documents
        else:
            continue
        if out is instance:
            out = dict(instance)
        out[key] = value
    return out


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
