"""Reading a decoded output into a Proposal (pure: a recorded Generation, a scripted model)."""

from __future__ import annotations

from edgeagent.agent.propose import LocalProposer
from edgeagent.runtime.local import Generation, TokenChoice
from edgeagent.tools.registry import ToolRegistry, as_tool
from edgeagent.types import Usage


def get_weather(city: str, days: int = 1) -> str:
    """Weather forecast for a city."""
    return f"{city}: sunny for {days} days"


def _proposer() -> LocalProposer:
    from edgeagent.config import load_settings
    from edgeagent.testing import FakeModel

    return LocalProposer(FakeModel(), ToolRegistry([as_tool(get_weather)]), load_settings())


def _generation(text: str) -> Generation:
    # one free token per character keeps the confidence spans exact
    choices = [TokenChoice(i, ch, -0.1, 2.0, False) for i, ch in enumerate(text)]
    return Generation(text, "stop", 10, 0, len(text), 0.01, 0.1, choices)


def test_identical_parallel_calls_are_kept_once():
    call = '{"name":"get_weather","arguments":{"city":"Oslo","days":2}}'
    other = '{"name":"get_weather","arguments":{"city":"Rome","days":2}}'
    text = f"[{call},{call},{other},{call}]"
    proposal = _proposer()._read(_generation(text), Usage(), "test", None)
    assert [c.arguments["city"] for c in proposal.calls] == ["Oslo", "Rome"]
    assert len(proposal.validations) == 2 and proposal.valid
    assert proposal.duplicates_dropped == 2
    assert [w.arguments["city"] for w in proposal.written] == ["Oslo", "Rome"]
    assert all(0.0 < (c.confidence or 0.0) <= 1.0 for c in proposal.calls)
    assert proposal.raw == text  # the model's own output is kept as it was


def test_single_call_drops_nothing():
    text = '{"name":"get_weather","arguments":{"city":"Oslo"}}'
    proposal = _proposer()._read(_generation(text), Usage(), "test", None)
    assert len(proposal.calls) == 1 and proposal.duplicates_dropped == 0
    assert proposal.calls[0].arguments == {"city": "Oslo", "days": 1}  # default filled in
    assert proposal.written[0].arguments == {"city": "Oslo"}  # as the model wrote it


def test_degenerate_values_are_invalid_unless_the_user_said_them(tmp_path):
    from edgeagent.agent.validate import validate_call
    from edgeagent.config import load_settings
    from edgeagent.tools.builtin import make_builtin_tools
    from edgeagent.tools.context import ToolContext
    from edgeagent.tools.registry import ToolRegistry
    from edgeagent.types import ToolCall

    (tmp_path / "list_dir").mkdir()
    (tmp_path / "notes.txt").write_text("hi")
    context = ToolContext(load_settings(allowed_roots=(tmp_path,)))
    registry = ToolRegistry(make_builtin_tools(context))
    cases = [
        ("list_dir", {"path": "list_dir"}, "tool"),
        ("file_info", {"path": "file_info.json"}, "tool"),
        ("search_files", {"query": "query"}, "parameter"),
        ("calculator", {"expression": "string"}, "placeholder"),
        ("read_file", {"path": "path/to/file"}, "placeholder"),
        ("search_files", {"query": "text to look for"}, "description"),
    ]
    for name, args, word in cases:
        verdict = validate_call(ToolCall(name, dict(args)), registry, context, "show me my files")
        assert not verdict.valid and word in verdict.error, (name, args, verdict.error)
    said = validate_call(
        ToolCall("list_dir", {"path": "list_dir"}), registry, context, "list the list_dir folder"
    )
    assert said.valid
    plain = validate_call(ToolCall("read_file", {"path": "notes.txt"}), registry, context, "read")
    assert plain.valid


def test_null_optional_arguments_are_left_out(tmp_path):
    from edgeagent.agent.validate import validate_call
    from edgeagent.config import load_settings
    from edgeagent.tools.builtin import make_builtin_tools
    from edgeagent.tools.context import ToolContext
    from edgeagent.tools.registry import ToolRegistry
    from edgeagent.types import ToolCall

    (tmp_path / "notes.txt").write_text("hi")
    context = ToolContext(load_settings(allowed_roots=(tmp_path,)))
    registry = ToolRegistry(make_builtin_tools(context))
    call = ToolCall("read_file", {"path": "notes.txt", "max_chars": None})
    assert validate_call(call, registry, context).valid
    assert call.arguments["max_chars"] == 4000
