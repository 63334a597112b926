"""The JSON Schema documents of `schemas/`, loaded once, and what is derived from them.

The documents are the one source of truth: this module validates with them (jsonschema-rs,
compiled once, Draft 7) and answers in Kazoo's error shape, fills their defaults, and hands
them to the OpenAPI builder and to the browser forms (`GET /v2/schemas/{name}`), which read
the same files.

jsonschema-rs needs a little glue, each piece here and nowhere else:
- `30.0` counts as an integer there; here it does not (stored documents keep exactly the
  types the schema names), so floats at the schema's integer properties are refused too;
- a string holding a lone UTF-16 surrogate cannot cross into Rust: it is reported as a
  failed pattern on its field instead of an exception;
- an empty-string key is dropped from an error's path: it is put back;
- `format: regex` (whitelist entries) is RE2's answer through `domain.whitelist`, whose
  reason is in the error message.
Schema `pattern`s run on Rust's `regex` crate: linear time, and `$` is the end of the text
(Python's `$` would also match before a final newline).
"""

from __future__ import annotations

import copy
import functools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs

from c2c_ari.domain import whitelist
from c2c_ari.domain.errors import FieldErrors, ValidationFailed

SCHEMAS_ENV = "C2C_ARI_SCHEMAS_DIR"

Path_ = tuple[str | int, ...]


def schemas_dir() -> Path:
    """Where the schema files live: $C2C_ARI_SCHEMAS_DIR, the installed copy, or the repo's."""
    override = os.environ.get(SCHEMAS_ENV)
    if override:
        return Path(override)
    here = Path(__file__).resolve()
    installed = here.parent / "schema_files"
    return installed if installed.is_dir() else here.parents[1] / "schemas"


@functools.lru_cache(maxsize=8)
def _load(directory: Path) -> dict[str, dict[str, Any]]:
    return {
        path.stem: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(directory.glob("*.json"))
    }


def load_schemas(directory: Path | None = None) -> dict[str, dict[str, Any]]:
    """Schema name (file name without .json) -> document; cached, so do not mutate."""
    return _load((directory or schemas_dir()).resolve())


# --- $ref, as our documents use it: "name", "#/pointer" or "name#/pointer" -------------------


class _Resolver:
    def __init__(self, documents: dict[str, dict[str, Any]]) -> None:
        self._by_id = {doc.get("$id", name): doc for name, doc in documents.items()}

    def lookup(self, ref: str, base: str) -> tuple[dict[str, Any], str]:
        """(the schema `ref` names, the id of the document it is in)."""
        name, _, pointer = ref.partition("#")
        name = name or base
        node: Any = self._by_id[name]
        for part in filter(None, pointer.split("/")):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node, name


def _integer_paths(schema: dict[str, Any], resolver: _Resolver, base: str,
                   where: Path_ = (), seen: frozenset[int] = frozenset()) -> Iterator[Path_]:
    """The property paths whose schema says `integer` (and not `number`)."""
    if "$ref" in schema:
        if id(schema) in seen:
            return
        target, base = resolver.lookup(schema["$ref"], base)
        yield from _integer_paths(target, resolver, base, where, seen | {id(schema)})
        return
    kinds = schema.get("type")
    kinds = [kinds] if isinstance(kinds, str) else kinds or []
    if "integer" in kinds and "number" not in kinds:
        yield where
    for keyword in ("items", "additionalProperties", "patternProperties"):
        sub = schema.get(keyword)
        if isinstance(sub, dict) and any(True for _ in _integer_paths(sub, resolver, base)):
            # The float check below walks fixed paths only; say so rather than miss one.
            raise NotImplementedError(f"an integer under {keyword} at {where}")
    for key, sub in schema.get("properties", {}).items():
        yield from _integer_paths(sub, resolver, base, (*where, key), seen)


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
_LIMITS = {"minLength", "maxLength", "minimum", "maximum", "minItems", "maxItems",
           "minProperties", "maxProperties"}


def _escape(part: object) -> str:
    # Kazoo escapes dots inside keys as %2E; control characters get the same treatment
    # so a hostile key cannot put a raw newline into an error (or a log line)
    return "".join(f"%{ord(c):02X}" if c == "." or c < " " or c == "\x7f" else c for c in str(part))


def _field(path: Path_) -> str:
    # a failure of the document itself (not an object) is reported on "data"
    return ".".join(_escape(part) for part in path) or "data"


def _describe(kind: Any, error: Any) -> tuple[str, dict[str, Any]]:
    """(Kazoo's keyword, its error entry) for one jsonschema-rs error kind."""
    name, params = kind.name, kind.as_dict()
    if name == "required":
        return name, {"message": "Field is required but missing"}
    if name == "additionalProperties":
        return name, {"message": _STRICT}
    if name == "format":
        if params["format"] != "regex":
            return name, {"message": "Field is not in the correct format",
                          "target": params["format"]}
        try:
            whitelist.compile_pattern(error.instance)
            reason = "not a valid RE2 pattern"
        except (ValueError, TypeError) as exc:
            reason = str(exc)
        return name, {"message": f"Value is not a valid regular expression: {reason}",
                      "target": "regex"}
    if name in _LIMITS:
        target: Any = params["limit"]
    elif name == "type":
        target = ", ".join(params["types"])
    elif name == "enum":
        target = params["options"]
    elif name == "pattern":
        target = params["pattern"]
    else:
        return name, {"message": "failed to validate"}  # Kazoo's words for anything else
    return name, {"message": _TARGETED[name].format(target), "target": target}


def _at(doc: Any, path: Path_) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def _full_path(doc: Any, error: Any) -> Path_:
    """The error's instance path, with an empty-string key that jsonschema-rs dropped put
    back (in our schemas one can only be the last part)."""
    path: Path_ = tuple(error.instance_path)
    try:
        node = _at(doc, path)
    except (KeyError, IndexError, TypeError):
        return path
    if isinstance(node, dict) and "" in node and node[""] == error.instance != node:
        return (*path, "")
    return path


def _surrogates(value: Any, where: Path_ = ()) -> Iterator[Path_]:
    """Paths of strings (values or keys) that hold a lone UTF-16 surrogate."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            yield where
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _surrogates(key, (*where, key))
            yield from _surrogates(item, (*where, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _surrogates(item, (*where, index))


class DocumentValidator:
    """Validates documents against one of the schemas, by name."""

    def __init__(self, schemas: dict[str, dict[str, Any]] | None = None) -> None:
        self.schemas = load_schemas() if schemas is None else schemas
        self._resolver = _Resolver(self.schemas)
        registry = jsonschema_rs.Registry(
            [(schema.get("$id", name), schema) for name, schema in self.schemas.items()])
        self._validators = {
            name: jsonschema_rs.Draft7Validator(
                schema, registry=registry, validate_formats=True,
                formats={"regex": _is_pattern}, pattern_options=jsonschema_rs.RegexOptions(),
            )
            for name, schema in self.schemas.items()
        }
        self._integers = {
            name: tuple(_integer_paths(schema, self._resolver, schema.get("$id", name)))
            for name, schema in self.schemas.items()
        }

    def validate(self, doc: Any, schema: str = "clicktocall") -> dict[str, Any]:
        """Return `doc` with schema defaults filled in, or raise ValidationFailed.

        The result is a new dict; below the top level, what gained no default is shared with
        `doc`, and `doc` itself is never changed."""
        errors = self.errors(doc, schema)
        if errors:
            raise ValidationFailed(errors)
        root = self.schemas[schema]
        filled = self._with_defaults(root, doc, root.get("$id", schema))
        return dict(filled) if filled is doc else filled

    def errors(self, doc: Any, schema: str = "clicktocall") -> FieldErrors:
        """Kazoo's per-field errors of `doc` (empty when it is valid)."""
        out: FieldErrors = {}
        try:
            valid = self._validators[schema].is_valid(doc)
        except UnicodeEncodeError:
            for path in _surrogates(doc):
                out.setdefault(_field(path), {})["pattern"] = {
                    "message": "Value is not valid Unicode text (a lone UTF-16 surrogate)"}
            return out
        if not valid:
            for error in self._validators[schema].iter_errors(doc):
                self._add(out, doc, error)
        for path in self._integers[schema]:
            try:
                value = _at(doc, path)
            except (KeyError, IndexError, TypeError):
                continue
            if isinstance(value, float):
                out.setdefault(_field(path), {})["type"] = {
                    "message": _TARGETED["type"].format("integer"), "target": "integer"}
        return out

    @staticmethod
    def _add(out: FieldErrors, doc: Any, error: Any) -> None:
        kind, path = error.kind, _full_path(doc, error)
        if kind.name == "propertyNames":
            # Reported at the name itself, the way Kazoo reports a property it does not allow.
            inner = kind.error
            entry: dict[str, Any] = {"message": _STRICT}
            if inner.kind.name == "pattern":
                entry["target"] = inner.kind.pattern
            out.setdefault(_field((*path, inner.instance)), {})["additionalProperties"] = entry
            return
        if kind.name == "required":
            path = (*path, kind.property)  # at the missing property's path (Kazoo's choice)
        keyword, entry = _describe(kind, error)
        out.setdefault(_field(path), {})[keyword] = entry

    def _with_defaults(self, schema: Any, instance: Any, base: str) -> Any:
        """`instance` with each missing property that has a default set, recursing only into
        objects present. That is what Kazoo does: `media: {}` gains `ignore_early_media`, an
        absent `media` stays absent.

        Copy on write, since defaults are only ever added: a dict that gains a default is
        copied first (and so is every dict above it); everything else is returned as it is.
        """
        if not isinstance(schema, dict) or not isinstance(instance, dict):
            return instance
        if "$ref" in schema:
            target, base = self._resolver.lookup(schema["$ref"], base)
            return self._with_defaults(target, instance, base)
        out = instance
        for key, sub in schema.get("properties", {}).items():
            if key in instance:
                value = self._with_defaults(sub, instance[key], base)
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


def _is_pattern(text: str) -> bool:
    try:
        whitelist.compile_pattern(text)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=1)
def default_validator() -> DocumentValidator:
    """The process-wide validator over the schemas in `schemas_dir()`, built on first use."""
    return DocumentValidator()
