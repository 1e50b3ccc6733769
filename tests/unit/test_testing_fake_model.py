"""edgeagent.testing.FakeModel: the scripted model the loop's unit tests stand on."""

from __future__ import annotations

import pytest

from edgeagent.errors import EdgeAgentError
from edgeagent.grammar.envelope import parse_envelope
from edgeagent.runtime.model import Model
from edgeagent.testing import FakeModel, Scripted, ScriptExhausted, call, calls


def test_outputs_come_back_in_order_and_every_request_is_recorded():
    model = FakeModel(["first", Scripted("second")])
    model.queue("third")
    assert model.remaining == 3
    texts = [model.generate(f"prompt {i}", max_tokens=50).text for i in range(3)]
    assert texts == ["first", "second", "third"] and model.remaining == 0
    assert [r.prompt for r in model.requests] == ["prompt 0", "prompt 1", "prompt 2"]
    assert all(r.grammar is None and r.max_tokens == 50 for r in model.requests)


def test_an_output_longer_than_max_tokens_ends_at_the_bound_with_length():
    model = FakeModel(["one two three four five", "one two"])
    cut = model.generate("p", max_tokens=3)  # "one", " ", "two"
    assert (cut.text, cut.finish_reason, cut.output_tokens) == ("one two", "length", 3)
    whole = model.generate("p", max_tokens=3)
    assert (whole.text, whole.finish_reason) == ("one two", "stop")


def test_decoding_more_than_was_scripted_raises():
    model = FakeModel(["only"])
    model.generate("p")
    with pytest.raises(ScriptExhausted, match="generation 2 was not scripted"):
        model.generate("p again")
    assert issubclass(ScriptExhausted, EdgeAgentError) and len(model.requests) == 2


def test_a_constrained_request_records_its_grammar():
    model = FakeModel([call("get_weather", city="Oslo"), "free"])
    constraint, info = model.grammar_engine().constrain('root ::= "x"')
    assert info.name == "fake"
    constrained = model.generate("p", constraint=constraint, first_bias={1: 8.0})
    free = model.generate("p")
    assert model.requests[0].grammar == 'root ::= "x"' and model.requests[0].first_bias == {1: 8.0}
    assert model.requests[1].grammar is None
    assert constrained.finish_reason == "grammar" and free.finish_reason == "stop"


def test_scripted_logprobs_and_streamed_pieces():
    model = FakeModel([Scripted("Hi there", logprob=-2.0, first_logprob=-0.5, margin=1.5)])
    pieces: list[str] = []
    gen = model.generate("p", on_text=pieces.append)
    assert pieces == ["Hi", " ", "there"] and "".join(pieces) == gen.text
    assert [c.logprob for c in gen.choices] == [-0.5, -2.0, -2.0]
    assert all(c.margin == 1.5 and not c.forced for c in gen.choices)


def test_call_helpers_write_the_envelope_wire_format():
    (one,) = parse_envelope(call("get_weather", city="Oslo").text)
    assert (one.name, one.arguments) == ("get_weather", {"city": "Oslo"})
    both = parse_envelope(calls(("a", {"x": 1}), ("b", {})).text)
    assert [(c.name, c.arguments) for c in both] == [("a", {"x": 1}), ("b", {})]


def test_render_tokenize_and_warm_prefix_are_sane(tmp_path):
    model = FakeModel()
    assert isinstance(model, Model) and model.path.name == "fake-model.gguf"
    prompt = model.render([{"role": "user", "content": "Hello there"}])
    assert "Hello there" in prompt and prompt.rstrip().endswith("assistant")
    assert len(model.tokenize("Hello, world")) == 4  # Hello , " " world
    assert model.tokenize("") == []
    assert model.warm_prefix("system", tmp_path).source == "cold"
    assert model.warm_prefix("system", tmp_path).source == "memory"
    assert model.warmed == ["system", "system"]
    model.close()
    assert model.closed


def test_a_script_the_envelope_could_never_produce_is_refused():
    from edgeagent.grammar.envelope import build_envelope
    from edgeagent.testing import ImpossibleScript

    tools = [("f", {"type": "object", "properties": {"a": {"type": "string"}}})]
    engine = FakeModel().grammar_engine()
    required, _ = engine.constrain(build_envelope(tools, mode="required").gbnf)
    answer_only, _ = engine.constrain(build_envelope(tools, mode="none").gbnf)
    auto, _ = engine.constrain(build_envelope(tools, mode="auto").gbnf)
    model = FakeModel(["plain words", call("f", a="x"), "plain words", call("f", a="x")])
    with pytest.raises(ImpossibleScript, match="requires a call"):
        model.generate("p", constraint=required)
    with pytest.raises(ImpossibleScript, match="allows only"):
        model.generate("p", constraint=answer_only)
    assert model.generate("p", constraint=auto).text == "plain words"
    assert model.generate("p", constraint=required).text.startswith('{"name":"f"')
