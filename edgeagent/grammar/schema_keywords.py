"""The JSON Schema keywords the compiler knows, how their values are checked, and value helpers.

``check`` refuses unknown keywords and malformed keyword values with a ``GrammarError`` naming
the keyword and its JSON path (the ``RuleBuilder`` remembers which schema objects passed);
``constraints`` drops annotations. The other helpers compare and classify JSON values.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from edgeagent.errors import GrammarError

if TYPE_CHECKING:
    from edgeagent.grammar.rules import RuleBuilder

TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")
ALL_TYPES = ("object", "array", "string", "number", "boolean", "null")  # number covers integer
ANNOTATIONS = frozenset(
    {
        "title", "description", "default", "examples", "$schema", "$id", "$comment", "$anchor",
        "deprecated", "readOnly", "writeOnly", "contentMediaType", "contentEncoding",
        "contentSchema", "discriminator",
    }
)  # fmt: skip
CONTAINERS = frozenset({"$defs", "definitions"})
STRING_KW = frozenset({"minLength", "maxLength", "pattern", "format"})
NUMBER_KW = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"})
OBJECT_KW = frozenset(
    {"properties", "required", "additionalProperties", "minProperties", "maxProperties"}
)
ARRAY_KW = frozenset({"items", "prefixItems", "minItems", "maxItems", "uniqueItems"})
COMBINATORS = frozenset({"anyOf", "oneOf", "allOf", "$ref"})
VALUE_KW = frozenset({"type", "enum", "const"})
SUPPORTED = STRING_KW | NUMBER_KW | OBJECT_KW | ARRAY_KW | COMBINATORS | VALUE_KW
KNOWN = SUPPORTED | ANNOTATIONS | CONTAINERS
UNSUPPORTED_HINTS = {
    "not": "rewrite without 'not' (e.g. an enum of the allowed values)",
    "if": "express the condition with anyOf branches",
    "then": "express the condition with anyOf branches",
    "else": "express the condition with anyOf branches",
    "patternProperties": "list the properties explicitly or use additionalProperties",
    "nullable": 'OpenAPI \'nullable\' is not JSON Schema: use "type": [..., "null"]',
    "items": "array-form 'items' is pre-2020 JSON Schema: use prefixItems",
}


_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*\Z")


def jp(path: str, *keys: str | int) -> str:
    """Extend a JSONPath with member names and indices."""
    for key in keys:
        if isinstance(key, int):
            path += f"[{key}]"
        elif _IDENT.match(key):
            path += f".{key}"
        else:
            path += "[" + json.dumps(key, ensure_ascii=False) + "]"
    return path


def _is_int(value: object) -> bool:
    """True for an integer or an integral float (not a boolean)."""
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, float) and value.is_integer()
    )


def _is_num(value: object) -> bool:
    """True for a finite number (not a boolean)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return not isinstance(value, float) or math.isfinite(value)


def json_type(value: object) -> str:
    """The JSON Schema type of a JSON value (integral floats count as integers)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def value_key(value: object) -> str:
    """A key under which JSON Schema-equal values (1 == 1.0, key order) compare equal."""

    def norm(v: object) -> object:
        """``v`` normalized for comparison (integral floats as ints, lists tagged)."""
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return v
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, list):
            return ["__list__", *(norm(i) for i in v)]
        if isinstance(v, dict):
            return {k: norm(i) for k, i in v.items()}
        return v

    return json.dumps(norm(value), sort_keys=True)


def expand_types(types: Iterable[str]) -> set[str]:
    """The set of types, with ``integer`` added when ``number`` is present."""
    out = set(types)
    if "number" in out:
        out.add("integer")
    return out


def type_list(value: object) -> list[str]:
    """A ``type`` keyword value as a list."""
    return [value] if isinstance(value, str) else list(value)  # type: ignore[arg-type]


def check(b: RuleBuilder, s: object, path: str) -> dict:
    """Validate a schema object's keywords and their values; returns it as a dict."""
    if b.is_checked(s):
        return s  # type: ignore[return-value]
    if not isinstance(s, dict):
        raise GrammarError(
            f"a schema must be an object or a boolean, got {type(s).__name__}",
            keyword=None,
            path=path,
        )
    for key, value in s.items():
        if not isinstance(key, str):
            raise GrammarError("schema keys must be strings", keyword=str(key), path=path)
        if key not in KNOWN:
            raise GrammarError(
                f"unsupported keyword {key!r}",
                keyword=key,
                path=path,
                hint=UNSUPPORTED_HINTS.get(
                    key, "remove it, or see grammars/README.md for the supported subset"
                ),
            )
        check_value(key, value, path)
    b.remember_checked(s)
    return s


def check_value(key: str, value: object, path: str) -> None:
    """Refuse a malformed value of the (known) keyword ``key`` with a ``GrammarError``."""

    def bad(expect: str, hint: str | None = None) -> GrammarError:
        """The error for a value that is not ``expect``."""
        return GrammarError(
            f"{key} must be {expect}, got {json.dumps(value, default=str)[:60]}",
            keyword=key,
            path=path,
            hint=hint,
        )

    schema_like = (dict, bool)
    if key == "type":
        types = type_list(value) if isinstance(value, str | list) else None
        if not types or any(t not in TYPES for t in types) or len(set(types)) != len(types):
            raise bad(f"one of {', '.join(TYPES)} or a list of them without repeats")
    elif key == "enum":
        if not isinstance(value, list) or not value:
            raise bad("a non-empty array")
    elif key in ("properties", "$defs", "definitions"):
        if not isinstance(value, dict) or not all(
            isinstance(v, schema_like) for v in value.values()
        ):
            raise bad("an object whose values are schemas")
    elif key == "required":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad("an array of strings")
    elif key in ("additionalProperties", "items"):
        if isinstance(value, list) and key == "items":
            raise bad("a schema", UNSUPPORTED_HINTS["items"])
        if not isinstance(value, schema_like):
            raise bad("a schema")
    elif key in ("prefixItems", "anyOf", "oneOf", "allOf"):
        if not isinstance(value, list) or not value:
            raise bad("a non-empty array of schemas")
        if not all(isinstance(v, schema_like) for v in value):
            raise bad("a non-empty array of schemas")
    elif key in (
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
    ):
        if not _is_int(value) or value < 0:  # type: ignore[operator]
            raise bad("a non-negative integer")
    elif key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        if not _is_num(value):
            hint = (
                "draft-4 boolean exclusiveMinimum/Maximum: use a number"
                if isinstance(value, bool)
                else None
            )
            raise bad("a finite number", hint)
    elif key == "multipleOf":
        if not _is_num(value) or value <= 0:  # type: ignore[operator]
            raise bad("a number above 0")
    elif key in ("pattern", "format", "$ref", "$schema", "$comment", "$anchor"):
        if not isinstance(value, str):
            raise bad("a string")
    elif key == "uniqueItems":
        if not isinstance(value, bool):
            raise bad("a boolean")
    elif key == "$id" and path != "$":
        raise GrammarError(
            "$id below the root (an embedded schema resource) is not supported",
            keyword="$id",
            path=path,
            hint="move the definition under $defs of the root schema",
        )


def constraints(s: dict, exclude: Iterable[str] = ()) -> dict:
    """The value-constraining keywords of ``s`` (no annotations or ``$defs``), minus ``exclude``."""
    skip = ANNOTATIONS | CONTAINERS | set(exclude)
    return {k: v for k, v in s.items() if k not in skip}
