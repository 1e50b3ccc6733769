"""README/SECURITY claims that no other test would catch breaking: keys and schema keywords."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeagent.agent.validate import validate_call
from edgeagent.config import load_settings
from edgeagent.grammar.envelope import build_envelope
from edgeagent.secrets import secret_variants
from edgeagent.tools.builtin import make_builtin_tools
from edgeagent.tools.context import ToolContext
from edgeagent.tools.executor import Executor
from edgeagent.tools.policy import Policy
from edgeagent.tools.registry import ToolRegistry, tool_from_openai
from edgeagent.types import ToolCall

KEY = 'sk-claims-"7Qx\\w-0042-key'  # a quote and a backslash: JSON-escaped if stored unscrubbed


def leaked(blob: bytes) -> list[str]:
    """The forms of KEY (raw, escaped, encoded) found in ``blob``."""
    return [form for form in secret_variants(KEY) if form.encode() in blob]


def test_notes_tool_never_stores_the_api_key(tmp_path: Path) -> None:
    """A note holding the key, written through the real history store (no store given)."""
    settings = load_settings(home=tmp_path / "home", allowed_roots=(tmp_path,), remote_api_key=KEY)
    context = ToolContext(settings)
    assert context.store is None  # the tool opens the history database itself
    executor = Executor(make_builtin_tools(context), Policy(auto_approve=True), context)
    result = executor.run(ToolCall("add_note", {"text": f"my key is {KEY}", "tags": [KEY]}))
    assert result.status == "ok", result.error
    files = sorted(settings.db_path.parent.glob(settings.db_path.name + "*"))
    assert files, "the note was not written to the history database"
    for path in files:
        assert leaked(path.read_bytes()) == [], path.name


# (parameter schema, keyword the grammar leaves to the validator, a value breaking it, a good one)
VALIDATOR_KEYWORDS = [
    ({"type": "number", "multipleOf": 0.5}, "multipleOf", 0.3, 1.5),
    ({"type": "number", "minimum": 0.5}, "minimum", 0.25, 0.75),
    ({"type": "number", "exclusiveMaximum": 1.5}, "exclusiveMaximum", 1.5, 1.25),
    (
        {"type": "array", "items": {"type": "integer"}, "uniqueItems": True},
        "uniqueItems",
        [1, 1],
        [1, 2],
    ),
    ({"enum": ["a", "bbb"], "maxLength": 2}, "maxLength", "bbb", "a"),
]


@pytest.mark.parametrize(("schema", "keyword", "bad", "good"), VALIDATOR_KEYWORDS)
def test_keywords_left_to_the_validator_are_enforced(schema, keyword, bad, good) -> None:
    """What the grammar reports as the validator's job really fails validation: nothing dropped."""
    parameters = {"type": "object", "properties": {"x": schema}, "required": ["x"]}
    envelope = build_envelope([("f", parameters)])
    reported = {vk.keyword for vk in envelope.validator_keywords["f"]}
    assert keyword in reported, reported
    f = tool_from_openai({"type": "function", "function": {"name": "f", "parameters": parameters}})
    registry = ToolRegistry([f])
    refused = validate_call(ToolCall("f", {"x": bad}), registry)
    assert refused.known_tool and not refused.schema_valid, refused
    assert "'x'" in (refused.error or "")
    accepted = validate_call(ToolCall("f", {"x": good}), registry)
    assert accepted.valid, accepted.error
