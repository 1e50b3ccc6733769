"""BFCL harness: data loading, doc -> tool conversion, BFCL's checker on hand-made answers."""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("bfcl_eval", reason="bfcl-eval is not installed (pip install --no-deps)")

from edgeagent.agent.propose import build_tool_registry  # noqa: E402
from edgeagent.agent.validate import validate_call  # noqa: E402
from edgeagent.errors import ConfigError  # noqa: E402
from edgeagent.eval.bfcl import (  # noqa: E402
    BfclItem,
    ItemResult,
    canonical_category,
    convert_schema,
    failure_kind,
    format_report,
    load_items,
    run_bfcl,
    run_item,
    score,
    summarize,
    to_bfcl_calls,
    to_openai_tools,
    tool_name,
)
from edgeagent.eval.bfcl_checker import bfcl_version, checker_module  # noqa: E402
from edgeagent.grammar.envelope import build_envelope  # noqa: E402
from edgeagent.types import ToolCall  # noqa: E402


def _item(item_id: str) -> BfclItem:
    category, _, index = item_id.rpartition("_")
    (item,) = load_items(category, 1, int(index))
    assert item.id == item_id
    return item


# ---- data ---------------------------------------------------------------------------------


def test_load_items_by_category_with_answers():
    simple = load_items("simple", 3, offset=1)
    assert [i.id for i in simple] == ["simple_python_1", "simple_python_2", "simple_python_3"]
    assert simple[0].category == "simple_python"
    assert simple[0].messages == [
        {"role": "user", "content": "Calculate the factorial of 5 using math functions."}
    ]
    assert simple[0].answer == [{"math.factorial": {"number": [5]}}]
    multiple = load_items("multiple", 2)
    assert len(multiple[0].functions) > 1 and multiple[0].answer
    irrelevant = load_items("irrelevance", 2)
    assert [i.answer for i in irrelevant] == [None, None]
    assert bfcl_version()


def test_unknown_category_is_a_config_error():
    assert canonical_category("Simple") == "simple_python"
    with pytest.raises(ConfigError) as info:
        canonical_category("live_simple")
    assert "irrelevance" in info.value.hint
    with pytest.raises(ConfigError):
        run_bfcl("simple", limit=-1, model=object())


# ---- conversion ---------------------------------------------------------------------------


def test_dotted_names_map_to_tool_names_and_back():
    assert tool_name("math.factorial") == "math_factorial"
    assert tool_name("a.b.c") == "a_b_c"
    tools, names = to_openai_tools(_item("simple_python_1").functions)
    assert tools[0]["function"]["name"] == "math_factorial"
    assert names == {"math_factorial": "math.factorial"}
    call = ToolCall("math_factorial", {"number": 5})
    assert to_bfcl_calls([call], names) == [{"math.factorial": {"number": 5}}]
    assert to_bfcl_calls([("unknown_tool", {"x": 1})], names) == [{"unknown_tool": {"x": 1}}]


def test_bfcl_types_become_json_schema():
    schema = {
        "type": "dict",
        "properties": {
            "ratio": {"type": "float", "description": "A ratio."},
            "point": {"type": "tuple", "items": {"type": "integer"}, "description": "x, y"},
            "anything": {"type": "any", "description": "Whatever."},
            "rows": {
                "type": "array",
                "items": {"type": "dict", "properties": {"w": {"type": "float"}}},
            },
            "meta": {"type": "dict", "description": "Free-form."},
            "untyped": {"description": "No type given."},
            "flag": {"type": "boolean", "optional": True, "description": "A flag."},
        },
        "required": ["ratio", "ghost"],
    }
    out = convert_schema(schema)
    props = out["properties"]
    assert out["type"] == "object"
    assert props["ratio"]["type"] == "number" and "float" in props["ratio"]["description"]
    assert props["point"] == {"type": "array", "items": {"type": "integer"}, "description": "x, y"}
    assert props["anything"]["type"] == "string"
    assert props["rows"]["items"]["type"] == "object"
    assert props["rows"]["items"]["properties"]["w"]["type"] == "number"
    assert props["meta"]["type"] == "object"
    assert props["untyped"]["type"] == "string"
    assert "optional" not in props["flag"] and "Optional: True" in props["flag"]["description"]
    assert out["required"] == ["ratio"]  # a required name without a property is dropped
    assert schema["properties"]["ratio"]["type"] == "float"  # the input is not modified


def test_every_item_converts_and_compiles():
    """Every 8th item of the three categories: tools our registry and grammar accept."""
    for category in ("simple_python", "multiple", "irrelevance"):
        for item in load_items(category)[::8]:
            tools, _ = to_openai_tools(item.functions)
            registry = build_tool_registry(tools, None)
            build_envelope(
                [(t.name, t.parameters) for t in registry],
                mode="auto",
                max_calls=4,
                answer_cap=200,
                string_cap=100,
            )


def test_converted_schema_validates_like_bfcl_types():
    tools, _ = to_openai_tools(_item("simple_python_0").functions)
    registry = build_tool_registry(tools, None)
    ok = validate_call(ToolCall("calculate_triangle_area", {"base": 10, "height": 5}), registry)
    assert ok.valid
    bad = validate_call(ToolCall("calculate_triangle_area", {"base": "ten"}), registry)
    assert not bad.valid and "height" in bad.error


# ---- BFCL's checker -----------------------------------------------------------------------


def test_checker_is_bfcls_own_without_the_handlers():
    module = checker_module()
    assert module.__name__ == "bfcl_eval.eval_checker.ast_eval.ast_checker"
    assert "bfcl_eval.constants.model_config" not in sys.modules  # the stand-in is not left behind
    assert "bfcl_eval.model_handler.api_inference.openai_completion" not in sys.modules


def test_simple_item_right_and_wrong_answers():
    item = _item("simple_python_1")
    _, names = to_openai_tools(item.functions)

    def verdict(*calls):
        return score(item, to_bfcl_calls(calls, names))

    assert verdict(("math_factorial", {"number": 5}))["valid"]
    wrong_value = verdict(("math_factorial", {"number": 6}))
    assert not wrong_value["valid"] and wrong_value["error_type"].startswith("value_error")
    wrong_type = verdict(("math_factorial", {"number": "5"}))
    assert not wrong_type["valid"] and wrong_type["error_type"].startswith("type_error")
    extra = verdict(("math_factorial", {"number": 5, "base": 10}))
    assert extra["error_type"] == "simple_function_checker:unexpected_param"
    missing = verdict(("math_factorial", {}))
    assert missing["error_type"] == "simple_function_checker:missing_required"
    two = verdict(("math_factorial", {"number": 5}), ("math_factorial", {"number": 5}))
    assert not two["valid"]
    none = score(item, [])
    assert not none["valid"] and none["error_type"] == "no_call"


def test_simple_item_optional_values_and_int_for_float():
    item = _item("simple_python_0")  # base, height; unit optional ("units" or absent)
    _, names = to_openai_tools(item.functions)
    call = ("calculate_triangle_area", {"base": 10, "height": 5})
    assert score(item, to_bfcl_calls([call], names))["valid"]
    with_unit = ("calculate_triangle_area", {"base": 10, "height": 5, "unit": "Units"})
    assert score(item, to_bfcl_calls([with_unit], names))["valid"]  # strings: case-insensitive
    other = ("calculate_triangle_area", {"base": 10, "height": 5, "unit": "cm"})
    assert not score(item, to_bfcl_calls([other], names))["valid"]


def test_multiple_item_needs_the_right_function():
    item = _item("multiple_0")
    tools, names = to_openai_tools(item.functions)
    expected_bfcl = next(iter(item.answer[0]))
    expected = tool_name(expected_bfcl)
    args = {k: v[0] for k, v in item.answer[0][expected_bfcl].items() if v and v[0] != ""}
    assert score(item, to_bfcl_calls([(expected, args)], names))["valid"]
    other = next(t["function"]["name"] for t in tools if t["function"]["name"] != expected)
    wrong = score(item, to_bfcl_calls([(other, args)], names))
    assert wrong["error_type"] == "simple_function_checker:wrong_func_name"
    twice = score(item, to_bfcl_calls([(expected, args), (expected, args)], names))
    assert twice["error_type"] == "multiple_function_checker:wrong_count"


def test_irrelevance_passes_only_without_a_call():
    item = _item("irrelevance_0")
    tools, names = to_openai_tools(item.functions)
    assert score(item, [])["valid"]
    name = tools[0]["function"]["name"]
    called = score(item, to_bfcl_calls([(name, {"weight": 70.0, "height": 1.8})], names))
    assert not called["valid"]
    result = ItemResult(
        item.id, item.category, False, True, True, 1.0, error_type=called["error_type"]
    )
    assert failure_kind(result) == "called_when_irrelevant"


# ---- summaries ----------------------------------------------------------------------------


def test_summary_figures_and_failure_kinds():
    rows = [
        ItemResult("a", "simple_python", True, True, True, 1.0, n_calls=1, n_valid_calls=1),
        ItemResult(
            "b",
            "simple_python",
            False,
            True,
            False,
            3.0,
            n_calls=2,
            n_valid_calls=1,
            error_type="simple_function_checker:unexpected_param",
        ),
        ItemResult("c", "irrelevance", True, False, None, 2.0),
        ItemResult(
            "d", "simple_python", False, False, None, 9.0, error_type="no_call", status="ok"
        ),
        ItemResult(
            "e",
            "multiple",
            False,
            False,
            None,
            0.1,
            error_type="grammar_error",
            status="grammar_error",
        ),
    ]
    s = summarize(rows)
    assert s["n"] == 5 and s["correct"] == 2 and s["accuracy"] == 0.4
    assert s["with_call"] == 0.4
    assert s["schema_validity"] == round(2 / 3, 4)
    assert s["latency_p50_s"] == 2.0 and s["latency_p95_s"] == 9.0 and s["latency_max_s"] == 9.0
    assert s["grammar_errors"] == 1
    assert s["failures"] == {"hallucinated_arg": 1, "no_call": 1, "grammar_error": 1}
    assert summarize([])["accuracy"] is None
    report = {
        "model": "m.gguf",
        "bfcl_eval_version": "x",
        "summary": {"all": s},
    }
    assert "40%" in format_report(report)


# ---- a real model --------------------------------------------------------------------------


@pytest.mark.model
def test_run_bfcl_on_two_simple_items_with_smollm(smollm_path):
    from edgeagent.config import load_settings

    settings = load_settings(max_tokens=48, decode_timeout_s=20.0, n_ctx=2048, n_threads=1)
    seen = []
    report = run_bfcl(
        "simple", limit=2, model=str(smollm_path), settings=settings, on_item=seen.append
    )
    assert report["categories"] == ["simple_python"]
    assert [i["id"] for i in report["items"]] == ["simple_python_0", "simple_python_1"]
    assert len(seen) == 2
    summary = report["summary"]["all"]
    assert summary["n"] == 2 and set(report["summary"]) == {"simple_python", "all"}
    items = {i.id: i for i in load_items("simple", 2)}
    for row in report["items"]:
        assert row["status"] == "ok" and 0 < row["latency_s"] < 60
        assert 0 < row["output_tokens"] <= 2 * 48  # a repair turn may add a second bounded decode
        # the recorded verdict is BFCL's verdict on the recorded calls
        assert row["correct"] == score(items[row["id"]], row["calls"])["valid"]
        assert row["had_call"] == bool(row["calls"])


@pytest.mark.model
def test_a_refused_schema_is_an_error_item_not_a_crash(smollm_path):
    from edgeagent.config import load_settings
    from edgeagent.runtime.session import cached_local_model

    settings = load_settings(model=str(smollm_path), max_tokens=16, n_ctx=2048)
    model = cached_local_model(settings)
    function = {
        "name": "pick",
        "description": "Pick a value.",
        "parameters": {
            "type": "dict",
            "properties": {"x": {"type": "string", "not": {"const": "a"}}},
            "required": ["x"],
        },
    }
    item = BfclItem(
        # the request names the tool, so retrieval shows it and its grammar is compiled
        "simple_python_x",
        "simple_python",
        [{"role": "user", "content": "pick the value b"}],
        [function],
    )
    result = run_item(item, model, settings)
    assert result.status == "grammar_error" and not result.correct
    assert "not" in result.error
    assert failure_kind(result) == "grammar_error"
