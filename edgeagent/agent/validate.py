"""Validator-first: parse -> schema (pydantic/jsonschema) -> semantic validators -> only then run.

This is the one validation of a proposed call: the tool's own schema and validators
(``Tool.validate_arguments``, ``Tool.check_semantics``) in that order, the stage that failed
named in ``Validation.stage``; the executor then runs the normalized arguments as validated.

Besides each tool's own validators, every string value is checked for the tell-tale signs of a
small model filling a slot without an answer: the tool's own name (``list_dir {"path":
"list_dir"}``), a parameter's name, a placeholder (``"string"``, ``"path/to/file"``) or a copy of
the parameter's description. Such a value is invalid unless the user's request contains it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgeagent.errors import ToolValidationError
from edgeagent.types import ToolCall


@dataclass
class Validation:
    """What validation made of one proposed call (the counts behind the validity metrics)."""

    call: ToolCall
    known_tool: bool
    schema_valid: bool
    semantic_valid: bool
    error: str | None = None

    @property
    def valid(self) -> bool:
        return self.known_tool and self.schema_valid and self.semantic_valid

    @property
    def stage(self) -> str | None:
        """Where validation stopped: ``tool`` (unknown), ``schema`` or ``semantic``; None if valid."""
        if not self.known_tool:
            return "tool"
        if not self.schema_valid:
            return "schema"
        return None if self.semantic_valid else "semantic"


PLACEHOLDERS = frozenset(
    {
        "string",
        "str",
        "value",
        "example",
        "text",
        "sample",
        "placeholder",
        "todo",
        "tbd",
        "none",
        "null",
        "undefined",
        "n/a",
        "...",
        "xxx",
        "foo",
        "bar",
        "your_file",
        "path/to/file",
        "path/to/folder",
        "path/to/dir",
        "/path/to/file",
        "file.txt",
        "filename",
        "file_name",
        "folder_name",
        "<path>",
        "<file>",
        "<value>",
        "<string>",
        "your query",
        "search term",
        "expression",
        "url",
        "http://example.com",
        "https://example.com",
    }
)
_WORD = re.compile(r"[a-z0-9]+")


def _norm(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def degenerate_reason(
    value: str, name: str, tool, tool_names: frozenset[str], request_text: str
) -> str | None:
    """Why a string argument looks like a filled-in slot rather than a value, or None."""
    raw = value.strip().lower()
    if not raw or len(raw) > 200:
        return None
    if request_text and raw in request_text.lower():
        return None  # the user said it
    stem = raw.rsplit(".", 1)[0] if "." in raw[1:] else raw
    if raw in tool_names or stem in tool_names:
        return f"{value!r} is the name of a tool, not a value from the request"
    params = set((tool.parameters.get("properties") or {}).keys())
    if raw in params or stem in params:
        return f"{value!r} is the name of a parameter, not a value from the request"
    if raw in PLACEHOLDERS:
        return f"{value!r} is a placeholder, not a value from the request"
    schema = (tool.parameters.get("properties") or {}).get(name) or {}
    description = _norm(str(schema.get("description") or ""))
    if len(description) >= 8 and _norm(value) == description:
        return f"{value!r} repeats the parameter's description, not a value from the request"
    return None


def _drop_null_optionals(arguments: dict, tool) -> dict:
    """Optional arguments set to null are left out (the tool's default applies), never passed."""
    required = set(tool.parameters.get("required") or ())
    return {k: v for k, v in arguments.items() if v is not None or k in required}


def validate_call(call: ToolCall, registry, context=None, request_text: str = "") -> Validation:
    """Validate ``call`` against its tool; on success its arguments are replaced by the normalized ones.

    ``request_text`` (the user's words) lets a value that merely looks degenerate pass when the
    user really asked for it (a file called ``notes``).
    """
    if call.name not in registry:
        error = f"unknown tool {call.name!r}; available: {', '.join(registry.names())}"
        call.status, call.error = "invalid", error
        return Validation(call, False, False, False, error)
    tool = registry.get(call.name)
    try:
        arguments = tool.validate_arguments(_drop_null_optionals(call.arguments, tool))
    except ToolValidationError as exc:
        call.status, call.error = "invalid", exc.message
        return Validation(call, True, False, False, exc.message)
    names = frozenset(registry.names())
    for arg, value in arguments.items():
        reason = (
            degenerate_reason(value, arg, tool, names, request_text)
            if isinstance(value, str)
            else None
        )
        if reason:
            error = f"argument {arg!r}: {reason}"
            call.status, call.error = "invalid", error
            return Validation(call, True, True, False, error)
    try:
        tool.check_semantics(arguments, context)  # a validator that crashes fails the call
    except ToolValidationError as exc:
        call.status, call.error = "invalid", exc.message
        return Validation(call, True, True, False, exc.message)
    call.arguments = arguments
    call.error = None
    return Validation(call, True, True, True)
