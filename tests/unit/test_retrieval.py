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
