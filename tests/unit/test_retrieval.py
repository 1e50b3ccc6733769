"""Tool retrieval: a request about none of the tools is chat; one about some sees only those."""

from __future__ import annotations

import pytest

from edgeagent.agent.retrieval import match_tools, tools_in_view, words
from edgeagent.config import load_settings
from edgeagent.tools.builtin import make_builtin_tools
from edgeagent.tools.context import ToolContext
from edgeagent.tools.registry import tool_from_function


@pytest.fixture(scope="module")
def builtins():
    return make_builtin_tools(ToolContext(load_settings()))


@pytest.mark.parametrize(
    "request_text",
    ["Name three uses of a paperclip.", "Give me one synonym for happy", "thanks!", "hi there"],
)
def test_chat_matches_no_tool(builtins, request_text):
    assert tools_in_view(match_tools(request_text, builtins)) == []


@pytest.mark.parametrize(
    ("request_text", "tool"),
    [
        ("What is 12 times 7?", "calculator"),
        ("What is the current CPU load?", "system_status"),
        ("which file mentions the dentist?", "search_files"),
        ("fetch https://example.com", "http_get"),
        ("how big is budget.csv", "file_info"),
    ],
)
def test_the_right_tool_is_in_view_first(builtins, request_text, tool):
    assert tools_in_view(match_tools(request_text, builtins))[0] == tool


def test_words_are_stemmed_and_stopwords_dropped():
    assert words("Listing the files and notes") == {"list", "file", "note"}
    assert "__arithmetic__" in words("what is 15% of 80")


def test_user_tools_are_matched_by_their_own_words():
    def get_weather(city: str) -> str:
        """Current weather forecast for a city."""
        return "sunny"

    weather = tool_from_function(get_weather)
    assert tools_in_view(match_tools("Will it rain in Oslo? weather please", [weather])) == [
        "get_weather"
    ]
    assert tools_in_view(match_tools("Write me a poem", [weather])) == []


def test_a_named_existing_file_brings_the_path_tools_into_view(builtins, tmp_path):
    from edgeagent.agent.paths import named_kinds
    from tests.helpers import make_tree

    root = make_tree(tmp_path / "r", {"config.json": "{}", "recipes/soup.txt": "x"})
    request = "What port is set in config.json?"
    assert tools_in_view(match_tools(request, builtins)) == []  # no tool word in it
    named = named_kinds(request, root)
    assert named == {"__named_file__"}
    view = tools_in_view(match_tools(request, builtins, named))
    assert view == ["read_file"]  # the tool that declares a named file its own
    sized = tools_in_view(match_tools("how big is config.json", builtins, named))
    assert sized[:2] == ["file_info", "read_file"]
    assert named_kinds("how many entries are in the recipes folder", root) == {"__named_dir__"}
    assert named_kinds("read ../../etc/hosts and /etc/passwd", root) == set()
    assert named_kinds("what is in missing.txt", root) == set()


def test_numbers_and_file_names_are_not_arithmetic_or_tool_words(builtins):
    assert "__arithmetic__" not in words("what type of entry is logs/app.log?")
    assert "__arithmetic__" in words("log(100) please")
    view = tools_in_view(match_tools("wat day is it 2day?", builtins))
    assert view[0] == "current_time" and "calculator" not in view


def test_a_follow_up_call_needs_the_request_to_ask_for_that_tool_in_words(builtins, tmp_path):
    from types import SimpleNamespace

    from edgeagent.agent.paths import named_kinds
    from edgeagent.agent.propose import LocalProposer
    from tests.helpers import make_tree

    root = make_tree(tmp_path / "r", {"budget.csv": "a,b\n"})

    def evidence(request: str, done: set[str]) -> bool:
        matches = match_tools(request, builtins, named_kinds(request, root))
        state = SimpleNamespace(matches=matches, view=tools_in_view(matches))
        return LocalProposer.follow_up_evidence(state, done)

    # the path alone is no request to read the file after its size was looked up
    assert not evidence("How big is budget.csv?", {"file_info"})
    assert not evidence("What's the CPU load right now?", {"system_status"})
    # two tools asked for in words: the second may follow the first
    assert evidence(
        "list the files in this folder, then search files that mention rent", {"list_dir"}
    )
