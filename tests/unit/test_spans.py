"""Arguments taken from the request are offered as the request's word spans, nothing else."""

from __future__ import annotations

from edgeagent.agent.spans import MAX_WORDS, request_spans, with_request_spans
from edgeagent.config import load_settings
from edgeagent.tools.builtin import make_builtin_tools
from edgeagent.tools.context import ToolContext


def _tools():
    return {t.name: t for t in make_builtin_tools(ToolContext(load_settings()))}


def test_spans_are_contiguous_trimmed_and_unique():
    spans = request_spans('Find files that mention "kelvin".')
    assert "kelvin" in spans and '"kelvin".' not in spans
    assert "that mention" in spans and "Find mention" not in spans
    assert len(spans) == len(set(spans))
    assert request_spans("") is None
    assert request_spans("word " * (MAX_WORDS + 1)) is None  # too long: free text stays


def test_declared_arguments_get_the_spans_and_others_do_not():
    tools = _tools()
    schema = with_request_spans(tools["search_files"], "search for Lisbon")
    # spans begin and end with a content word that is not the tool's own ("search", "for")
    assert schema["properties"]["query"]["enum"] == ["Lisbon"]
    assert "enum" not in schema["properties"]["glob"]
    assert "enum" not in tools["search_files"].parameters["properties"]["query"]  # a copy
    # a tool that declares no span arguments is untouched
    assert with_request_spans(tools["read_file"], "read x") is tools["read_file"].parameters


def test_a_tool_name_cannot_become_a_query_unless_the_user_wrote_it():
    schema = with_request_spans(_tools()["search_notes"], "What did I note about parking?")
    assert "search_notes" not in schema["properties"]["query"]["enum"]
    assert "parking" in schema["properties"]["query"]["enum"]


def test_a_new_files_path_is_one_the_user_named_and_its_text_their_words():
    write = _tools()["write_file"]
    schema = with_request_spans(
        write, "Make a new file todo_tomorrow.txt that says: call the plumber"
    )
    assert schema["properties"]["path"]["enum"] == ["todo_tomorrow.txt"]
    assert "call the plumber" in schema["properties"]["content"]["enum"]
    assert "that says" not in schema["properties"]["content"]["enum"]
    outside = with_request_spans(write, "Write 'pwned' to ../out/pwned.txt")
    assert outside["properties"]["path"]["enum"] == ["../out/pwned.txt"]  # the validator refuses
    unnamed = with_request_spans(write, "write my shopping list down")
    assert "enum" not in unnamed["properties"]["path"]  # nothing named: free text


def test_a_file_write_needs_a_path_the_user_named():
    from edgeagent.agent.spans import lacks_named_path

    write = _tools()["write_file"]
    assert lacks_named_path(write, "Write a haiku about autumn")
    assert not lacks_named_path(write, "write a haiku into autumn.txt")
    assert not lacks_named_path(_tools()["read_file"], "Write a haiku about autumn")


def test_an_expression_is_a_span_the_calculator_accepts():
    calc = _tools()["calculator"]
    schema = with_request_spans(calc, "Please divide 355 by 113 and give me the result.")
    assert schema["properties"]["expression"]["enum"] == ["divide 355 by 113"]
    root = with_request_spans(calc, "Calculate the square root of 1764.")
    assert "square root of 1764" in root["properties"]["expression"]["enum"]
    # nothing the calculator takes (only bare numbers): the model writes the expression
    eggs = with_request_spans(calc, "I bought 3 packs of 24 eggs. How many eggs in total?")
    assert "enum" not in eggs["properties"]["expression"]


def test_required_numbers_are_the_numbers_the_request_states():
    from edgeagent.agent.spans import request_numbers, with_number_choices

    said = "Calculate the force between two charges of 5C and 7C placed 3 meters apart."
    assert request_numbers(said) == [5, 7, 3, 2]
    assert request_numbers("1,250 m and 0.01 C in file2.txt") == [1250, 0.01]
    schema = {
        "type": "object",
        "properties": {
            "charge": {"type": "number", "minimum": 0},
            "count": {"type": "integer"},
            "decimals": {"type": "integer"},
        },
        "required": ["charge", "count"],
    }
    chosen = with_number_choices(schema, "a charge of 0.01 and -2 items")
    assert chosen["properties"]["charge"]["enum"] == [0.01]  # -2 is below the minimum
    assert chosen["properties"]["count"]["enum"] == [-2]  # 0.01 is no integer
    assert "enum" not in chosen["properties"]["decimals"]  # optional: left free
    assert with_number_choices(schema, "no numbers here") is schema
