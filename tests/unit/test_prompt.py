"""The system prompt: tool lines as signatures or JSON Schema, worked examples on request."""

from __future__ import annotations

import json

import jsonschema
import pytest

from edgeagent.agent.prompt import INSTRUCTIONS, system_prompt
from edgeagent.config import load_settings
from edgeagent.errors import ConfigError
from edgeagent.tools.builtin import BUILTIN_NAMES, make_builtin_tools
from edgeagent.tools.context import ToolContext


@pytest.fixture(scope="module")
def builtins():
    return make_builtin_tools(ToolContext(load_settings()))


def test_signatures_are_the_default_and_examples_are_off(builtins):
    text = system_prompt(builtins)
    assert text.startswith(INSTRUCTIONS)
    assert "- read_file(path: string" in text
    assert "Examples:" not in text


def test_json_rendering_shows_each_tools_schema(builtins):
    lines = [x for x in system_prompt(builtins, rendering="json").splitlines() if x[:3] == "- {"]
    specs = [json.loads(line[2:]) for line in lines]
    assert [s["name"] for s in specs] == list(BUILTIN_NAMES)
    assert specs[1]["parameters"] == builtins[1].parameters


def test_examples_are_valid_calls_of_the_shown_tools(builtins):
    text = system_prompt(builtins, examples=True)
    calls = [json.loads(x[5:]) for x in text.splitlines() if x.startswith("You: {")]
    assert {c["name"] for c in calls} == set(BUILTIN_NAMES)
    by_name = {t.name: t for t in builtins}
    for call in calls:
        jsonschema.validate(call["arguments"], by_name[call["name"]].parameters)
    only_two = system_prompt(builtins[:2], examples=True)
    assert "search_files" not in only_two.split("Examples:")[1]


def test_an_unknown_rendering_is_refused_by_name():
    with pytest.raises(ConfigError, match="tool_rendering = 'xml'"):
        load_settings(tool_rendering="xml")
