"""Tool registry: function/model/OpenAI-dict tools, strict validation, discovery."""

from __future__ import annotations

import datetime
import enum
import json
import re
import sys
import textwrap
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import pytest
from pydantic import BaseModel, ConfigDict, Field

from edgeagent.errors import ToolDefinitionError, ToolExecutionError, ToolValidationError
from edgeagent.tools import registry as registry_module
from edgeagent.tools.discovery import build_registry, load_entry_point_tools, load_tools_file
from edgeagent.tools.registry import (
    Tool,
    ToolRegistry,
    as_tool,
    tool,
    tool_from_function,
    tool_from_model,
    tool_from_openai,
)
from edgeagent.tools.signature import parse_docstring

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "tools_example.py"


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Point(BaseModel):
    """A point on a grid."""

    x: int
    y: int = 0


class TreeNode(BaseModel):
    value: int
    children: list[TreeNode] = []


class SearchArgs(BaseModel):
    """Search the notes.

    Args:
        query: Words to look for.
    """

    query: str
    limit: int = Field(5, ge=1, le=50, description="Most results to return.")


def _props(fn) -> dict:
    return tool_from_function(fn).parameters["properties"]


def _walk_keys(node: Any, parent: str | None = None):
    """Every (parent key, key) in a JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield parent, key
            yield from _walk_keys(value, key)
    elif isinstance(node, list):
        for value in node:
            yield from _walk_keys(value, parent)


# --- schemas from functions ---------------------------------------------------------------------


def test_scalars_required_and_defaults():
    def f(s: str, i: int, x: float = 0.5, b: bool = False) -> None:
        """Summary line
        continues here.

        More detail that is not the summary.

        Args:
            s (str): The string,
                over two lines.
            i: An integer.
        """

    t = tool_from_function(f)
    assert t.name == "f"
    assert t.description == "Summary line continues here."
    assert t.parameters == {
        "additionalProperties": False,
        "properties": {
            "s": {"description": "The string, over two lines.", "type": "string"},
            "i": {"description": "An integer.", "type": "integer"},
            "x": {"default": 0.5, "type": "number"},
            "b": {"default": False, "type": "boolean"},
        },
        "required": ["s", "i"],
        "type": "object",
    }


def test_containers_literal_enum_optional():
    def f(
        tags: list[str],
        weights: dict[str, float],
        pair: tuple[int, str],
        unit: Literal["c", "f"] = "c",
        mode: Literal["fast"] = "fast",
        color: Color = Color.RED,
        limit: int | None = None,
        names: Optional[list[str]] = None,  # noqa: UP045 - the spelling under test
        anything: dict[str, Any] | None = None,
        when: datetime.date | None = None,
    ) -> None: ...

    p = _props(f)
    assert p["tags"] == {"items": {"type": "string"}, "type": "array"}
    assert p["weights"] == {"additionalProperties": {"type": "number"}, "type": "object"}
    assert p["pair"]["prefixItems"] == [{"type": "integer"}, {"type": "string"}]
    assert p["unit"] == {"default": "c", "enum": ["c", "f"], "type": "string"}
    assert p["mode"] == {"const": "fast", "default": "fast", "type": "string"}
    assert p["color"] == {"enum": ["red", "blue"], "type": "string", "default": "red"}
    assert p["limit"] == {"type": ["integer", "null"], "default": None}
    assert p["names"] == {
        "anyOf": [{"items": {"type": "string"}, "type": "array"}, {"type": "null"}],
        "default": None,
    }
    assert p["anything"] == {
        "anyOf": [{"additionalProperties": True, "type": "object"}, {"type": "null"}],
        "default": None,
    }
    assert p["when"]["anyOf"][0] == {"format": "date", "type": "string"}


def test_pydantic_models_are_inlined_and_recursion_kept_in_defs():
    def f(at: Point, tree: TreeNode | None = None, title: str = "") -> None: ...

    schema = tool_from_function(f).parameters
    assert schema["properties"]["at"] == {
        "description": "A point on a grid.",
        "properties": {"x": {"type": "integer"}, "y": {"default": 0, "type": "integer"}},
        "required": ["x"],
        "type": "object",
    }
    assert schema["properties"]["tree"]["anyOf"][0] == {"$ref": "#/$defs/TreeNode"}
    assert list(schema["$defs"]) == ["TreeNode"]
    assert schema["$defs"]["TreeNode"]["properties"]["children"]["items"] == {
        "$ref": "#/$defs/TreeNode"
    }
    # no pydantic title noise anywhere, but a *property* called "title" survives
    assert [k for parent, k in _walk_keys(schema) if k == "title" and parent != "properties"] == []
    assert "title" in schema["properties"]


def test_annotated_constraints_and_descriptions():
    def f(
        n: Annotated[int, Field(ge=1, le=10)],
        code: Annotated[str, Field(min_length=3, max_length=3, pattern=r"^[A-Z]+$")],
        note: Annotated[str, "A short note."] = "",
        k: int = Field(3, ge=0, description="How many."),
    ) -> None:
        """Constrained.

        Args:
            n: Overridden by nothing: the docstring describes n.
        """

    p = _props(f)
    assert p["n"] == {
        "description": "Overridden by nothing: the docstring describes n.",
        "maximum": 10,
        "minimum": 1,
        "type": "integer",
    }
    assert p["code"] == {"maxLength": 3, "minLength": 3, "pattern": "^[A-Z]+$", "type": "string"}
    assert p["note"] == {"default": "", "description": "A short note.", "type": "string"}
    assert p["k"] == {"default": 3, "description": "How many.", "minimum": 0, "type": "integer"}
    assert tool_from_function(f).parameters["required"] == ["n", "code"]


def test_parameter_names_pydantic_cannot_use_directly():
    def f(json: str, _private: int = 1, schema: bool = False) -> dict:
        return {"json": json, "_private": _private, "schema": schema}

    t = tool_from_function(f)
    assert list(t.parameters["properties"]) == ["json", "_private", "schema"]
    assert t.validate_arguments({"json": "x"}) == {"json": "x", "_private": 1, "schema": False}
    assert t.call({"json": "x", "_private": 2}) == {"json": "x", "_private": 2, "schema": False}


def test_docstring_styles():
    summary, params = parse_docstring(
        """Sphinx style.

        :param path: Where to look.
        :param int depth: How deep.
        :returns: nothing
        """
    )
    assert summary == "Sphinx style."
    assert params == {"path": "Where to look.", "depth": "How deep."}
    summary, params = parse_docstring(
        """NumPy style
        summary.

        Parameters
        ----------
        path : str
            Where to look.
        depth : int
            How deep,
            really.

        Returns
        -------
        list
        """
    )
    assert summary == "NumPy style summary."
    assert params == {"path": "Where to look.", "depth": "How deep, really."}


def test_long_description_is_clipped():
    t = tool_from_function(lambda: None, name="x", description="word " * 1000)
    assert len(t.description) == 1024
    assert t.description.endswith("...")


@pytest.mark.parametrize(
    ("source", "param", "fragment"),
    [
        ("def f(a: int, *rest: int): ...", "rest", "*rest"),
        ("def f(a: int, **extra: int): ...", "extra", "**extra"),
        ("def f(a: int, b): ...", "b", "missing type annotation"),
        ("def f(data: bytes): ...", "data", "unsupported annotation bytes"),
        ("def f(items: list): ...", "items", "bare list"),
        ("def f(m: dict[int, str]): ...", "m", "dict keys must be str"),
        ("def f(x: Any): ...", "x", "Any is only allowed inside a container"),
        ("def f(s: set[int]): ...", "s", "unsupported annotation"),
        ("def f(p: Path): ...", "p", "unsupported annotation Path"),
        ("def f(a: int, /): ...", "a", "positional-only"),
    ],
)
def test_unsupported_signatures_name_the_parameter(source, param, fragment):
    scope: dict[str, Any] = {"Any": Any, "Path": Path}
    exec(source, scope)
    with pytest.raises(ToolDefinitionError) as err:
        tool_from_function(scope["f"])
    assert f"parameter {param!r}" in err.value.message
    assert fragment in err.value.message
    assert err.value.hint


def test_unresolvable_annotation_is_a_definition_error():
    def f(x: NotDefinedAnywhere) -> None: ...  # noqa: F821

    with pytest.raises(ToolDefinitionError, match="cannot resolve the type annotations"):
        tool_from_function(f)


@pytest.mark.parametrize(
    "name", ["", "1abc", "math.factorial", "a b", "x" * 65, "héllo", "semi;colon", None]
)
def test_bad_names_are_refused(name):
    with pytest.raises(ToolDefinitionError, match="invalid tool name"):
        Tool(name=name, description="", parameters={"type": "object", "properties": {}})
    with pytest.raises(ToolDefinitionError, match="invalid tool name"):
        tool_from_openai({"name": name})


@pytest.mark.parametrize("name", ["a", "_x", "get-weather", "answer", "x" * 64, "Tool_2"])
def test_good_names_are_accepted(name):
    assert tool_from_function(lambda: None, name=name).name == name


def test_lambda_and_callable_objects_need_a_name():
    with pytest.raises(ToolDefinitionError, match="'<lambda>'"):
        tool_from_function(lambda: None)

    class Adder:
        def __call__(self, a: int, b: int = 1) -> int:
            return a + b

    with pytest.raises(ToolDefinitionError, match="pass name="):
        tool_from_function(Adder())
    t = tool_from_function(Adder(), name="add")
    assert t.parameters["required"] == ["a"]
    assert t.call({"a": 2}) == 3


# --- validation ---------------------------------------------------------------------------------


def counter(
    count: int,
    label: str = "n",
    ratio: float = 1.0,
    verbose: bool = False,
    color: Color = Color.RED,
    at: Point | None = None,
    when: datetime.date | None = None,
) -> dict:
    """Count things.

    Args:
        count: How many.
    """
    return {"count": count, "color": color, "at": at, "when": when, "ratio": ratio}


def test_good_arguments_are_normalized_with_defaults():
    t = tool_from_function(counter)
    assert t.validate_arguments({"count": 3}) == {
        "count": 3,
        "label": "n",
        "ratio": 1.0,
        "verbose": False,
        "color": "red",
        "at": None,
        "when": None,
    }
    out = t.validate_arguments(
        {"count": 3, "ratio": 2, "color": "blue", "at": {"x": 1}, "when": "2024-02-29"}
    )
    assert out["ratio"] == 2.0 and isinstance(out["ratio"], float)
    assert out["at"] == {"x": 1, "y": 0}
    assert out["when"] == "2024-02-29"
    assert t.validate_arguments('{"count": 1}')["count"] == 1  # OpenAI sends a JSON string


@pytest.mark.parametrize(
    ("args", "argument", "fragment"),
    [
        ({"count": "5"}, "count", "valid integer"),
        ({"count": 5.0}, "count", "valid integer"),
        ({"count": True}, "count", "valid integer"),
        ({"count": 1, "verbose": 1}, "verbose", "valid boolean"),
        ({"count": 1, "verbose": "true"}, "verbose", "valid boolean"),
        ({"count": 1, "label": 5}, "label", "valid string"),
        ({"count": 1, "ratio": "1.5"}, "ratio", "valid number"),
        ({"count": 1, "color": "green"}, "color", "'red' or 'blue'"),
        ({"count": 1, "at": {"x": "1"}}, "at.x", "valid integer"),
        ({"count": 1, "at": {"y": 1}}, "at.x", "is required"),
        ({"count": 1, "when": "2024-13-01"}, "when", "date"),
        ({}, "count", "is required"),
        ({"count": 1, "cuont": 2}, "cuont", "unknown argument"),
    ],
)
def test_bad_arguments_get_one_line_naming_the_argument(args, argument, fragment):
    t = tool_from_function(counter)
    with pytest.raises(ToolValidationError) as err:
        t.validate_arguments(args)
    message = err.value.message
    assert "\n" not in message
    assert message.startswith("counter: ")
    assert repr(argument) in message
    assert fragment in message
    assert err.value.tool == "counter"
    assert "count: integer (required)" in err.value.hint


def test_several_problems_in_one_line():
    t = tool_from_function(counter)
    with pytest.raises(ToolValidationError) as err:
        t.validate_arguments({"count": "x", "label": 3, "bogus": 1})
    message = err.value.message
    assert "\n" not in message
    for name in ("'count'", "'label'", "'bogus'"):
        assert name in message


def test_unions_report_once_without_branch_tags():
    def f(u: int | str) -> None: ...

    with pytest.raises(ToolValidationError) as err:
        tool_from_function(f).validate_arguments({"u": [1]})
    assert (
        err.value.message == "f: argument 'u': Input should be a valid integer or "
        "Input should be a valid string, got [1]"
    )


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", 42])
def test_arguments_must_be_a_json_object(raw):
    with pytest.raises(ToolValidationError, match="JSON"):
        tool_from_function(counter).validate_arguments(raw)


def test_call_passes_typed_values():
    t = tool_from_function(counter)
    out = t.call({"count": 2, "color": "blue", "at": {"x": 4}, "when": "2024-01-02"})
    assert out["color"] is Color.BLUE
    assert out["at"] == Point(x=4, y=0)
    assert out["when"] == datetime.date(2024, 1, 2)
    with pytest.raises(ToolValidationError):
        t.call({"count": "2"})


def test_semantic_validators_get_arguments_and_context():
    seen = []

    def positive(args: dict, context: Any) -> None:
        seen.append((args["count"], context))
        if args["count"] <= 0:
            raise ToolValidationError("count must be positive")

    def buggy(args: dict, context: Any) -> None:
        raise KeyError("oops")

    t = tool_from_function(counter, validators=[positive])
    assert t.check_arguments({"count": 2}, context="ctx")["count"] == 2
    assert seen == [(2, "ctx")]
    with pytest.raises(ToolValidationError, match="count must be positive") as err:
        t.check_arguments({"count": 0})
    assert err.value.tool == "counter"
    with pytest.raises(ToolValidationError, match="validator buggy failed: KeyError"):
        tool_from_function(counter, validators=[buggy]).check_arguments({"count": 1})


# --- pydantic model tools -----------------------------------------------------------------------


def test_tool_from_model():
    received = []
    t = tool_from_model(SearchArgs, received.append, risk="read")
    assert t.name == "SearchArgs"
    assert t.description == "Search the notes."
    assert t.parameters == {
        "properties": {
            "query": {"type": "string", "description": "Words to look for."},
            "limit": {
                "default": 5,
                "description": "Most results to return.",
                "maximum": 50,
                "minimum": 1,
                "type": "integer",
            },
        },
        "required": ["query"],
        "type": "object",
        "additionalProperties": False,
    }
    assert t.validate_arguments({"query": "x"}) == {"query": "x", "limit": 5}
    # the model ignores extras, the tool does not
    with pytest.raises(ToolValidationError, match="unknown argument 'page'"):
        t.validate_arguments({"query": "x", "page": 2})
    with pytest.raises(ToolValidationError, match="'limit'"):
        t.validate_arguments({"query": "x", "limit": 99})
    t.call({"query": "y"})
    assert received == [SearchArgs(query="y", limit=5)]


def test_model_with_aliases_validates_by_alias():
    class Move(BaseModel):
        model_config = ConfigDict(extra="forbid")
        from_: str = Field(alias="from")

    t = tool_from_model(Move, name="move")
    assert list(t.parameters["properties"]) == ["from"]
    assert t.validate_arguments({"from": "a"}) == {"from": "a"}


# --- OpenAI dicts -------------------------------------------------------------------------------

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name."},
                "days": {"type": "integer", "minimum": 1, "default": 1},
                "when": {"type": "string", "format": "date"},
                "unit": {"type": "string", "enum": ["c", "f"]},
            },
            "required": ["city"],
        },
    },
}


def test_openai_round_trip_both_shapes():
    t = tool_from_openai(WEATHER)
    assert t.to_openai() == WEATHER
    assert t.fn is None and t.args_model is None and t.source == "openai"
    bare = tool_from_openai(WEATHER["function"])
    assert bare.to_openai() == WEATHER
    anthropic = tool_from_openai(
        {
            "name": "get_weather",
            "description": "x",
            "input_schema": WEATHER["function"]["parameters"],
        }
    )
    assert anthropic.parameters == WEATHER["function"]["parameters"]
    # a function tool survives the trip through the OpenAI format
    f = tool_from_function(counter)
    again = tool_from_openai(f.to_openai())
    assert again.to_openai() == f.to_openai()
    assert again.validate_arguments({"count": 1}) == f.validate_arguments({"count": 1}) | {
        "at": None,
        "when": None,
    }
    with pytest.raises(ToolValidationError, match="'count'"):
        again.validate_arguments({"count": "1"})


def test_to_openai_returns_a_copy():
    t = tool_from_function(counter)
    t.to_openai()["function"]["parameters"]["properties"].clear()
    assert "count" in t.parameters["properties"]


def test_openai_validation():
    t = tool_from_openai(WEATHER)
    assert t.validate_arguments({"city": "Paris"}) == {"city": "Paris", "days": 1}
    cases = [
        ({"days": "3"}, ["argument 'city' is required", "argument 'days': '3' is not of type"]),
        ({"city": "P", "days": 0}, ["argument 'days': 0 is less than the minimum of 1"]),
        ({"city": "P", "unit": "k"}, ["argument 'unit'"]),
        ({"city": "P", "when": "2024-13-40"}, ["argument 'when'", "date"]),
        ({"city": "P", "country": "FR"}, ["unknown argument 'country'"]),
    ]
    for args, fragments in cases:
        with pytest.raises(ToolValidationError) as err:
            t.validate_arguments(args)
        assert "\n" not in err.value.message
        for fragment in fragments:
            assert fragment in err.value.message, (args, err.value.message)


def test_openai_formats_are_checked():
    t = tool_from_openai(
        {
            "name": "formats",
            "parameters": {
                "type": "object",
                "properties": {
                    key: {"type": "string", "format": key}
                    for key in ("date", "time", "date-time", "email", "uri", "uuid")
                },
            },
        }
    )
    good = {
        "date": "2024-02-29",
        "time": "10:00:00Z",
        "date-time": "2024-02-29T10:00:00+01:00",
        "email": "a@example.org",
        "uri": "https://example.org/a?b=c",
        "uuid": "123e4567-e89b-12d3-a456-426614174000",
    }
    assert t.validate_arguments(good) == good
    for key in good:
        with pytest.raises(ToolValidationError, match=f"argument '{key}'.*is not a '{key}'"):
            t.validate_arguments({key: "not valid at all"})
    assert sys.modules.get("rfc3987_syntax", "absent") is not None  # the import shield is gone


def test_openai_schema_only_tool_cannot_run_but_fn_can_be_attached():
    with pytest.raises(ToolExecutionError, match="no implementation"):
        tool_from_openai(WEATHER).call({"city": "Paris"})
    t = tool_from_openai(WEATHER, fn=lambda **kw: kw)
    assert t.call({"city": "Paris"}) == {"city": "Paris", "days": 1}


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (
            {"name": "x", "parameters": {"type": "object", "properties": {"a": {"type": "strin"}}}},
            "not a valid JSON Schema",
        ),
        ({"name": "x", "parameters": {"type": "string"}}, "type 'object'"),
        ({"name": "x", "parameters": "nope"}, "parameters must be a JSON object"),
        ({"type": "code_interpreter", "function": {"name": "x"}}, "unsupported tool type"),
        ({"description": "no name"}, "needs 'function' or 'name'"),
        ({"name": "x", "description": 3}, "description must be a string"),
    ],
)
def test_bad_openai_dicts(bad, fragment):
    with pytest.raises(ToolDefinitionError, match=re.escape(fragment)):
        tool_from_openai(bad)


# --- decorator and as_tool ----------------------------------------------------------------------


def test_decorator_bare_and_with_options():
    @tool
    def shout(text: str) -> str:
        """Upper-case a text."""
        return text.upper()

    @tool(name="save", risk="write", local_only=True, timeout_s=5)
    def save_text(text: str) -> str:
        """Save a text."""
        return text

    assert shout("hi") == "HI"  # the function itself is returned
    t = as_tool(shout)
    assert (t.name, t.description, t.risk, t.fn) == ("shout", "Upper-case a text.", "read", shout)
    s = as_tool(save_text)
    assert (s.name, s.risk, s.local_only, s.timeout_s) == ("save", "write", True, 5)
    assert s.call({"text": "x"}) == "x"


def test_decorator_errors_surface_at_definition():
    with pytest.raises(ToolDefinitionError, match="parameter 'x'"):

        @tool
        def bad(x) -> None: ...

    with pytest.raises(ToolDefinitionError, match="unknown risk"):

        @tool(risk="dangerous")
        def risky(x: int) -> None: ...

    with pytest.raises(ToolDefinitionError, match="timeout_s"):
        tool_from_function(counter, timeout_s=0)


def test_as_tool_dispatch():
    t = tool_from_function(counter)
    assert as_tool(t) is t
    assert as_tool(counter).name == "counter"
    assert as_tool(SearchArgs).name == "SearchArgs"
    assert as_tool(WEATHER).name == "get_weather"
    for junk in (42, "counter", int):
        with pytest.raises(ToolDefinitionError, match="cannot make a tool"):
            as_tool(junk)


# --- registry -----------------------------------------------------------------------------------


def _registry() -> ToolRegistry:
    secret = tool_from_function(lambda: None, name="secret", local_only=True)
    return ToolRegistry([counter, WEATHER, secret])


def test_registry_basics():
    reg = _registry()
    assert reg.names() == ["counter", "get_weather", "secret"]
    assert len(reg) == 3 and "counter" in reg and "nope" not in reg
    assert [t.name for t in reg] == reg.names()
    assert reg.get("get_weather").source == "openai"
    with pytest.raises(ToolDefinitionError, match="duplicate tool name 'counter'"):
        reg.add(tool_from_openai({"name": "counter"}))
    with pytest.raises(ToolValidationError) as err:
        reg.get("get_wether")
    assert err.value.message == (
        "unknown tool 'get_wether'; available tools: counter, get_weather, secret"
    )
    assert err.value.tool == "get_wether"


def test_registry_subset_and_openai_export():
    reg = _registry()
    assert reg.subset(["secret", "counter"]).names() == ["counter", "secret"]
    with pytest.raises(ToolValidationError, match="unknown tool 'nope'"):
        reg.subset(["nope"])
    assert [d["function"]["name"] for d in reg.to_openai()] == reg.names()
    remote = reg.to_openai(exclude_local_only=True)
    assert [d["function"]["name"] for d in remote] == ["counter", "get_weather"]
    json.dumps(remote)  # serializable as is


def test_fingerprint_is_stable_and_sensitive():
    a = _registry().fingerprint()
    assert re.fullmatch(r"[0-9a-f]{64}", a)
    assert _registry().fingerprint() == a
    changed = json.loads(json.dumps(WEATHER))
    changed["function"]["parameters"]["properties"]["days"]["default"] = 2
    secret = _registry().get("secret")
    assert ToolRegistry([counter, changed, secret]).fingerprint() != a
    reordered = ToolRegistry([WEATHER, counter, secret])
    assert reordered.fingerprint() != a
    assert _registry().subset(["counter", "get_weather"]).fingerprint() != a


# --- tools files --------------------------------------------------------------------------------


def test_load_fixture_tools_file():
    tools = load_tools_file(FIXTURE)
    assert [t.name for t in tools] == ["word_count", "convert_temperature"]
    assert all(t.source == f"file:{FIXTURE}" for t in tools)
    assert tools[0].call({"text": "one two three"}) == 3
    assert tools[1].call({"value": 212, "to": "celsius"}) == 100.0
    assert tools[1].parameters["properties"]["to"]["enum"] == ["celsius", "fahrenheit"]
    assert (
        tools[0].parameters["properties"]["text"]["description"] == "The text whose words to count."
    )


def _write(tmp_path: Path, body: str, name: str = "mytools.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def test_tools_file_with_tool_instances_and_TOOLS_list(tmp_path):
    path = _write(
        tmp_path,
        """
        from edgeagent.tools.registry import tool, tool_from_openai

        STOCK = tool_from_openai({"name": "stock_price", "parameters": {"type": "object"}})

        @tool
        def ping(host: str) -> str:
            return host
        """,
    )
    assert [t.name for t in load_tools_file(path)] == ["stock_price", "ping"]
    listed = _write(
        tmp_path,
        """
        from edgeagent.tools.registry import tool

        @tool
        def not_exported(x: int) -> int:
            return x

        def plain(x: int) -> int:
            '''Plain function.'''
            return x

        TOOLS = [plain, {"name": "remote_only", "description": "d"}]
        """,
        name="listed.py",
    )
    tools = load_tools_file(listed)
    assert [t.name for t in tools] == ["plain", "remote_only"]
    assert tools[0].description == "Plain function."


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        ("import os\n\nraise RuntimeError('boom')\n", [":3: RuntimeError: boom"]),
        ("def f(:\n    pass\n", [":1: SyntaxError"]),
        ("import no_such_module_xyz\n", [":1: ModuleNotFoundError", "no_such_module_xyz"]),
        (
            "from edgeagent.tools.registry import tool\n\n@tool\ndef f(a: int, b): ...\n",
            ["parameter 'b'", "missing type annotation"],
        ),
        ("x = 1\n", ["no tools found"]),
        ("TOOLS = 'abc'\n", ["TOOLS must be a list"]),
        ("import sys\nsys.exit(3)\n", [":2: SystemExit"]),
    ],
)
def test_broken_tools_files(tmp_path, body, fragments):
    path = _write(tmp_path, body, name="broken.py")
    with pytest.raises(ToolDefinitionError) as err:
        load_tools_file(path)
    assert str(path) in err.value.message
    for fragment in fragments:
        assert fragment in err.value.message, err.value.message
    assert err.value.hint


def test_discovery_is_reachable_from_the_registry_module():
    assert registry_module.build_registry is build_registry
    assert registry_module.load_tools_file is load_tools_file
    with pytest.raises(AttributeError):
        registry_module.no_such_name  # noqa: B018


def test_missing_or_non_python_tools_file(tmp_path):
    with pytest.raises(ToolDefinitionError, match="does not exist"):
        load_tools_file(tmp_path / "nope.py")
    txt = tmp_path / "tools.txt"
    txt.write_text("x")
    with pytest.raises(ToolDefinitionError, match="not a .py file"):
        load_tools_file(txt)


# --- entry points -------------------------------------------------------------------------------


@pytest.fixture
def fake_plugin(tmp_path, monkeypatch):
    """An installed distribution 'edgeagent-fake-plugin' with four edgeagent.tools entry points."""
    module = f"edgeagent_fake_plugin_{abs(hash(str(tmp_path)))}"
    site = tmp_path / "site"
    site.mkdir()
    (site / f"{module}.py").write_text(
        textwrap.dedent(
            """
            from edgeagent.tools.registry import tool, tool_from_openai

            @tool
            def forecast(city: str) -> str:
                '''Forecast for a city.'''
                return "sunny in " + city

            def counter(n: int) -> int:
                return n

            BUNDLE = [counter, tool_from_openai({"name": "lookup"})]

            def broken(x) -> None:
                return None
            """
        )
    )
    dist = site / "edgeagent_fake_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: edgeagent-fake-plugin\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[edgeagent.tools]\n"
        f"forecast = {module}:forecast\n"
        f"bundle = {module}:BUNDLE\n"
        f"missing = {module}:does_not_exist\n"
        f"broken = {module}:broken\n"
    )
    monkeypatch.syspath_prepend(str(site))
    yield "edgeagent-fake-plugin"
    sys.modules.pop(module, None)


def test_entry_point_tools(fake_plugin):
    tools, errors = load_entry_point_tools()
    mine = [t for t in tools if t.source == f"entrypoint:{fake_plugin}"]
    assert [t.name for t in mine] == ["forecast", "counter", "lookup"]
    assert mine[0].call({"city": "Oslo"}) == "sunny in Oslo"
    messages = [e.message for e in errors]
    assert len(messages) == 2
    assert any(
        "'missing'" in m and "failed to load" in m and "AttributeError" in m for m in messages
    )
    assert any("'broken'" in m and "parameter 'x'" in m for m in messages)
    assert all(fake_plugin in m for m in messages)


def test_build_registry_orders_sources_and_handles_clashes(fake_plugin, tmp_path):
    builtin = [tool_from_function(counter)]  # the plugin's "counter" clashes with this
    reg = build_registry(builtin=builtin, tools_files=[FIXTURE])
    names = reg.names()
    assert names[0] == "counter" and reg.get("counter").fn is counter
    assert reg.get("counter").source == "builtin"
    assert names.index("forecast") < names.index("word_count")
    assert names[-2:] == ["word_count", "convert_temperature"]
    assert any("'counter'" in e.message and "skipped" in e.message for e in reg.load_errors)
    assert len(reg.load_errors) == 3  # two broken entry points + one clash

    no_plugins = build_registry(builtin=builtin, tools_files=[FIXTURE], entry_points=False)
    assert no_plugins.names() == ["counter", "word_count", "convert_temperature"]
    assert no_plugins.load_errors == []

    clash = _write(
        tmp_path,
        "from edgeagent.tools.registry import tool\n\n@tool\ndef counter(n: int) -> int:\n"
        "    return n\n",
        name="clash.py",
    )
    with pytest.raises(
        ToolDefinitionError, match=r"'counter' is already defined \(source: builtin\)"
    ):
        build_registry(builtin=builtin, tools_files=[clash], entry_points=False)
