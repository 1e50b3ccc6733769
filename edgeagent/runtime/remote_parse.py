"""Reading what a remote model sent: bounded JSON, and tool calls in every shape servers use.

Everything here treats the reply as hostile. ``parse_json`` refuses nesting deeper than
``MAX_JSON_DEPTH`` with a ``ValueError`` (checked on the text before parsing, so neither a
``RecursionError`` nor a C stack overflow can happen). ``make_call`` turns one
``{"name", "arguments"}`` object into a ``ToolCall``; arguments that do not parse, are not an
object or nest too deeply give ``status="invalid"`` with the error, and ``arguments={}`` that
must never be filled with defaults (the router rejects such calls before validation).
"""

from __future__ import annotations

import json
from typing import Any

from edgeagent.types import ToolCall

MAX_JSON_DEPTH = 64
EXCERPT_CHARS = 160
TOOL_CALL_OPEN, TOOL_CALL_CLOSE = "<tool_call>", "</tool_call>"


class JSONTooDeepError(ValueError):
    """JSON nested deeper than the cap."""


def clip(text: str, limit: int = EXCERPT_CHARS) -> str:
    """``text`` on one line, cut to ``limit`` characters with ``...``."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def json_depth_exceeds(text: str, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``text`` parses to JSON nested deeper than ``max_depth`` (False if it is not JSON).

    Linear time on hostile input: the C parser (which raises RecursionError long before the C
    stack is at risk) then an iterative walk; no regular expression that could backtrack.
    """
    if text.count("[") + text.count("{") <= max_depth:
        return False
    try:
        value = json.loads(text)
    except RecursionError:
        return True
    except ValueError:
        return False
    return _depth(value) > max_depth


def _depth(value: Any) -> int:
    from edgeagent.inputs import json_depth

    return json_depth(value)


def parse_json(text: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` that raises ``JSONTooDeepError`` (a ValueError) past ``max_depth`` levels."""
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8")  # UnicodeDecodeError is a ValueError too
    try:
        value = json.loads(text)
    except RecursionError:
        raise JSONTooDeepError(f"JSON nested deeper than {max_depth} levels") from None
    if _depth(value) > max_depth:
        raise JSONTooDeepError(f"JSON nested deeper than {max_depth} levels")
    return value


def _invalid(name: str, error: str) -> ToolCall:
    return ToolCall(name=name, arguments={}, status="invalid", error=error, route="remote")


def make_call(function: Any) -> ToolCall:
    """One ``{"name", "arguments"}`` object (arguments as a JSON string or object) -> ToolCall."""
    if not isinstance(function, dict):
        return _invalid("", "remote tool call has no function object")
    name = function.get("name")
    if not isinstance(name, str) or not name.strip():
        return _invalid("", "remote tool call has no function name")
    name = clip(name.strip().rstrip(":"), 80)
    raw = function.get("arguments", function.get("parameters", {}))
    if raw is None or raw == "":
        raw = {}
    if isinstance(raw, str):
        try:
            raw = parse_json(raw)
        except ValueError as exc:
            return _invalid(
                name,
                f"arguments are not valid JSON ({exc.args[0] if exc.args else exc}): "
                f"{clip(function.get('arguments', ''), 80)!r}",
            )
    elif _depth(raw) > MAX_JSON_DEPTH:
        return _invalid(name, f"arguments nest deeper than {MAX_JSON_DEPTH} levels")
    if not isinstance(raw, dict):
        return _invalid(name, f"arguments must be a JSON object, got {type(raw).__name__}")
    return ToolCall(name=name, arguments=raw, route="remote")


def native_calls(message: dict) -> list[ToolCall]:
    """Calls from ``tool_calls`` (or the legacy ``function_call``) of a reply message."""
    raw = message.get("tool_calls")
    if isinstance(raw, list) and raw:
        items = [item.get("function") if isinstance(item, dict) else None for item in raw]
    elif isinstance(message.get("function_call"), dict):
        items = [message["function_call"]]
    else:
        return []
    return [make_call(item) for item in items]


def _looks_like_call(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("name"), str)
        and set(obj) <= {"name", "arguments", "parameters", "id", "type"}
        and ("arguments" in obj or "parameters" in obj)
    )


def _tool_call_blocks(text: str) -> list[str]:
    """The bodies of ``<tool_call>...</tool_call>`` blocks, found with ``str.find`` (linear)."""
    blocks, position = [], 0
    while (start := text.find(TOOL_CALL_OPEN, position)) != -1:
        end = text.find(TOOL_CALL_CLOSE, start + len(TOOL_CALL_OPEN))
        if end == -1:
            break
        blocks.append(text[start + len(TOOL_CALL_OPEN) : end].strip())
        position = end + len(TOOL_CALL_CLOSE)
    return blocks


def _unfence(text: str) -> str:
    """The inside of one markdown code fence (```json ... ```), else the text as it is."""
    if len(text) >= 6 and text.startswith("```") and text.endswith("```"):
        inner = text[3:-3]
        if inner.startswith("json"):
            inner = inner[4:]
        return inner.strip()
    return text


def content_calls(text: str) -> list[ToolCall]:
    """Calls written as the message content by servers without native tool calling."""
    stripped = text.strip()
    blocks = _tool_call_blocks(stripped)
    if blocks:
        candidates: list[Any] = []
        for block in blocks:
            try:
                candidates.append(parse_json(block))
            except ValueError:
                candidates.append({"name": "", "arguments": {}})
        return [make_call(c) if _looks_like_call(c) else make_call(None) for c in candidates]
    stripped = _unfence(stripped)
    if not stripped.startswith(("{", "[")):
        return []
    try:
        obj = parse_json(stripped)
    except ValueError:
        return []
    if isinstance(obj, dict) and isinstance(obj.get("function"), dict):
        obj = obj["function"]
    if _looks_like_call(obj):
        return [make_call(obj)]
    if isinstance(obj, list) and obj and all(_looks_like_call(o) for o in obj):
        return [make_call(o) for o in obj]
    return []
