"""Argument checking helpers: one-line problem messages from pydantic and jsonschema errors.

Each problem names the argument (``argument 'at.x': ...``) so a small model can repair its call.
``jsonschema_validator`` builds a checked, format-aware validator for OpenAI-dict tools.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from edgeagent.errors import ToolDefinitionError
from edgeagent.tools.signature import clip


def short_json(value: Any, limit: int = 40) -> str:
    """Compact JSON of ``value``, cut to ``limit`` characters."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def type_label(schema: Any) -> str:
    """A short type label for a property schema: ``integer``, ``"c"|"f"``, ``array of string``."""
    if not isinstance(schema, dict):
        return "any"
    if "enum" in schema:
        return "|".join(short_json(v, 20) for v in schema["enum"][:8]) + (
            "|..." if len(schema["enum"]) > 8 else ""
        )
    if "const" in schema:
        return short_json(schema["const"], 20)
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            return "|".join(type_label(s) for s in schema[key])
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    kind = schema.get("type")
    if isinstance(schema.get("format"), str) and kind == "string":
        return f"string ({schema['format']})"
    if isinstance(kind, list):
        return "|".join(str(k) for k in kind)
    if kind == "array" and isinstance(schema.get("items"), dict):
        return f"array of {type_label(schema['items'])}"
    return str(kind) if kind else "any"


def _loc_text(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _clean_loc(loc: Sequence[Any], args: Any, kind: str | None) -> str:
    """Drop pydantic's union-branch tags from ``loc``: keep only keys present in the input."""
    parts: list[Any] = []
    node = args
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        in_dict = isinstance(node, dict) and isinstance(part, str) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            node = node[part]
        elif not (last and kind == "missing"):
            continue  # a union tag such as 'int' or 'Point', not a key of the input
        parts.append(part)
    return _loc_text(parts)


def pydantic_problems(exc: ValidationError, args: dict) -> list[str]:
    """One problem per bad argument; a union's per-branch errors joined by "or"."""
    missing: list[str] = []
    by_where: dict[str, list[str]] = {}
    got: dict[str, str] = {}
    for err in exc.errors(include_url=False):
        loc = err.get("loc") or ()
        kind = err.get("type")
        if kind == "extra_forbidden" and len(loc) == 1:
            continue  # reported by our own unknown-argument check
        where = _clean_loc(loc, args, kind)
        if kind == "missing":
            missing.append(f"argument {where!r} is required" if where else "argument missing")
            continue
        by_where.setdefault(where, [])
        msg = err.get("msg", "invalid")
        if msg not in by_where[where]:
            by_where[where].append(msg)
        if "input" in err:
            got.setdefault(where, short_json(err["input"]))
    problems = list(dict.fromkeys(missing))
    for where, msgs in by_where.items():
        # a union reports once per branch: one line, joined by "or"
        text = " or ".join(msgs) + (f", got {got[where]}" if where in got else "")
        problems.append(f"argument {where!r}: {text}" if where else text)
    return problems


def jsonschema_problem(err: Any) -> str:
    """One problem for a jsonschema ValidationError."""
    where = _loc_text(list(err.absolute_path))
    if err.validator == "required" and isinstance(err.instance, dict):
        missing = [r for r in err.validator_value if r not in err.instance]
        prefix = f"{where}." if where else ""
        return "; ".join(f"argument {prefix + m!r} is required" for m in missing)
    message = clip(err.message, 200)
    return f"argument {where!r}: {message}" if where else message


def _import_jsonschema() -> None:
    """Import jsonschema without ``rfc3987_syntax``, which builds a parser for ~2.5 s at import.

    That package only checks the ``iri``/``iri-reference`` formats (the compiler does not support
    them); every other format checker (date, time, date-time, email, uri, uuid) stays active.
    If jsonschema was already imported elsewhere, nothing changes.
    """
    if "jsonschema" in sys.modules or "rfc3987_syntax" in sys.modules:
        return
    sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]  # makes its import fail
    try:
        import jsonschema  # noqa: F401
    finally:
        del sys.modules["rfc3987_syntax"]


def jsonschema_validator(schema: dict, name: str) -> Any:
    """A format-checking validator for ``schema``; a malformed schema is a ToolDefinitionError."""
    try:
        _import_jsonschema()
        from jsonschema import Draft202012Validator, validators
        from jsonschema.exceptions import SchemaError
    except ImportError as exc:  # pragma: no cover - jsonschema is a dependency
        raise ToolDefinitionError(
            f"tool {name!r}: validating OpenAI-format tools needs the jsonschema package",
            hint="pip install 'jsonschema[format-nongpl]'",
        ) from exc
    cls = validators.validator_for(schema, default=Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise ToolDefinitionError(
            f"tool {name!r}: parameters is not a valid JSON Schema at {where}: "
            f"{clip(exc.message, 200)}",
            hint="fix the tool's parameters schema",
        ) from None
    return cls(schema, format_checker=cls.FORMAT_CHECKER)
