"""A small JSON-schema subset, checked by pure functions: is a model's output valid JSON, does it
conform to the schema, and what value does it carry. No dependency beyond the standard library.

Supported keywords: `type` (object, array, string, number, integer, boolean, null),
`properties`, `required`, `additionalProperties` (true/false) and `items`. Any other keyword is
an error when the schema is loaded, never silently ignored. Every reason names the key path it
is about, JSONPath style: `$.answer: expected string, got number`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")
KEYWORDS = {"type", "properties", "required", "additionalProperties", "items"}


class SchemaError(ValueError):
    """The schema itself is not in the supported subset (message names the key path)."""


def check_schema(schema: Any, where: str = "schema") -> None:
    """Raise SchemaError naming `where.<path>` if `schema` is not a schema of the subset."""
    if not isinstance(schema, dict):
        raise SchemaError(f"{where}: expected a mapping, got {type(schema).__name__}")
    unknown = sorted(set(schema) - KEYWORDS)
    if unknown:
        raise SchemaError(f"{where}.{unknown[0]}: unsupported keyword; supported: {sorted(KEYWORDS)}")
    if "type" not in schema:
        raise SchemaError(f"{where}.type: required; one of {list(TYPES)}")
    kind = schema["type"]
    if kind not in TYPES:
        raise SchemaError(f"{where}.type: expected one of {list(TYPES)}, got {kind!r}")
    object_only = [k for k in ("properties", "required", "additionalProperties") if k in schema]
    if object_only and kind != "object":
        raise SchemaError(f"{where}.{object_only[0]}: only allowed with type: object")
    if "items" in schema and kind != "array":
        raise SchemaError(f"{where}.items: only allowed with type: array")
    props = schema.get("properties", {})
    if not isinstance(props, dict):
        raise SchemaError(f"{where}.properties: expected a mapping of key -> schema")
    for key, sub in props.items():
        check_schema(sub, f"{where}.properties.{key}")
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(k, str) for k in required):
        raise SchemaError(f"{where}.required: expected a list of key names")
    if len(set(required)) != len(required):
        raise SchemaError(f"{where}.required: duplicate key names in {required}")
    extra = schema.get("additionalProperties", True)
    if not isinstance(extra, bool):
        raise SchemaError(f"{where}.additionalProperties: expected true or false")
    if extra is False:
        missing = [k for k in required if k not in props]
        if missing:
            raise SchemaError(f"{where}.required: key '{missing[0]}' is required but not in "
                              f"properties, and additionalProperties is false")
    if "items" in schema:
        check_schema(schema["items"], f"{where}.items")


def type_name(value: Any) -> str:
    """The JSON type of a parsed value ('integer' only where 'number' would also do)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is(value: Any, kind: str) -> bool:
    actual = type_name(value)
    if kind == "number":
        return actual in ("number", "integer")
    if kind == "integer":
        return actual == "integer" or (actual == "number" and float(value).is_integer())
    return actual == kind


def validate(value: Any, schema: dict, path: str = "$") -> list[str]:
    """Every way `value` (parsed JSON) breaks `schema`, as 'path: reason'; [] = conforms."""
    kind = schema["type"]
    if not _is(value, kind):
        return [f"{path}: expected {kind}, got {type_name(value)}"]
    errors: list[str] = []
    if kind == "object":
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{path}: missing required key '{key}'")
        for key, item in value.items():
            if key in props:
                errors += validate(item, props[key], f"{path}.{key}")
            elif schema.get("additionalProperties", True) is False:
                errors.append(f"{path}.{key}: unexpected key (additionalProperties is false)")
    elif kind == "array" and "items" in schema:
        for i, item in enumerate(value):
            errors += validate(item, schema["items"], f"{path}[{i}]")
    return errors


def _no_constants(name: str):
    raise ValueError(f"{name} is not JSON")


def parse_json(text: str) -> tuple[bool, Any, str]:
    """(is valid JSON, parsed value, reason). The whole text must be one JSON value (surrounding
    whitespace allowed); NaN and Infinity are rejected, as strict JSON does."""
    try:
        value = json.loads(text, parse_constant=_no_constants)
    except ValueError as e:    # json.JSONDecodeError is a ValueError
        return False, None, f"$: not JSON: {e}"
    if isinstance(value, float) and not math.isfinite(value):
        return False, None, "$: not JSON: non-finite number"
    return True, value, ""


@dataclass(frozen=True)
class FormatCheck:
    valid_json: bool
    schema_valid: bool
    value: Any              # the value under `value_key` when schema_valid, else None
    reason: str             # first reason it failed ('' when it conforms)


def assess(text: str, schema: dict, value_key: str | None = None) -> FormatCheck:
    """One model output against the schema: JSON?, conforming?, and the value inside."""
    ok, parsed, reason = parse_json(text)
    if not ok:
        return FormatCheck(False, False, None, reason)
    errors = validate(parsed, schema)
    if errors:
        return FormatCheck(True, False, None, errors[0])
    value = parsed.get(value_key) if value_key is not None and isinstance(parsed, dict) else parsed
    return FormatCheck(True, True, value, "")
