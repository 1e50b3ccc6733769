"""The llama.cpp runtime on the two real tiny models: templates, bounds, streaming, prefix reuse."""

from __future__ import annotations

import time

import pytest

from edgeagent.config import load_settings
from edgeagent.errors import GenerationLimitError, ModelFileError
from edgeagent.runtime.local import LocalModel, _is_looping

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def loaded(tiny_model_path):
    model = LocalModel(tiny_model_path, load_settings(n_ctx=512))
    yield model
    model.close()


def test_template_family_and_markers(loaded):
    prompt = loaded.render([{"role": "user", "content": "hi"}])
    if loaded.template.family == "chatml":
        assert prompt.endswith("<|im_start|>assistant\n")
        assert loaded.template.from_gguf
    else:
        assert loaded.template.family == "gemma"
        assert not loaded.template.from_gguf  # this GGUF has no template: the family fallback
        assert prompt.startswith("<bos><start_of_turn>user\nhi<end_of_turn>")
        assert prompt.endswith("<start_of_turn>model\n")
    # the BOS token is never doubled
    tokens = loaded.tokenize(prompt)
    bos = loaded.llama.token_bos()
    assert tokens[:2].count(bos) <= 1


def test_generation_is_bounded_and_streams(loaded):
    streamed: list[str] = []
    gen = loaded.chat(
        [{"role": "user", "content": "Count from one to fifty in words."}],
        max_tokens=12,
        on_text=streamed.append,
    )
    assert gen.output_tokens <= 12
    assert gen.finish_reason in {"length", "stop", "repetition"}
    assert "".join(streamed) == gen.text
    assert gen.ttft_s > 0 and gen.total_s >= gen.ttft_s
    assert len(gen.choices) == gen.output_tokens
    assert all(c.logprob <= 0 for c in gen.choices)


def test_wall_clock_bound(loaded):
    story = [{"role": "user", "content": "Tell me a long story."}]
    loaded.chat(story, max_tokens=1)  # the prompt's KV stays where the cache can keep it
    started = time.perf_counter()
    try:
        gen = loaded.chat(story, max_tokens=200, timeout_s=0.05)
    except GenerationLimitError as exc:  # a sliding-window cache re-evaluated the prompt
        assert "time limit" in exc.message
    else:
        assert gen.finish_reason == "timeout"
        assert gen.output_tokens < 200
    assert time.perf_counter() - started < 5.0  # bounded either way, never 200 tokens


def test_prefix_kv_is_reused_across_calls(loaded):
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Say yes."},
    ]
    loaded.chat(messages, max_tokens=2)
    messages[-1] = {"role": "user", "content": "Say no."}
    second = loaded.chat(messages, max_tokens=2)
    assert second.cached_prompt_tokens >= 5


def test_context_overflow_is_refused_not_truncated(loaded):
    with pytest.raises(GenerationLimitError, match="exceeds the context"):
        loaded.generate("word " * 600, max_tokens=16)


def test_broken_file_never_reaches_llama(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 20)
    with pytest.raises(ModelFileError):
        LocalModel(bad, load_settings())


def test_loop_detector():
    assert _is_looping([5, 6, 7] * 4)
    assert _is_looping([9] * 4)
    assert not _is_looping([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])


def test_repeat_penalty_under_a_grammar_counts_free_tokens_only(loaded, monkeypatch):
    import json

    from edgeagent.grammar.compiler import compile_schema
    from edgeagent.runtime.engines import make_engine

    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 12}, "days": {"type": "integer"}},
        "required": ["city", "days"],
    }
    engine = make_engine(loaded.llama, loaded.fingerprint)
    seen_recent: list[list[int]] = []
    original = loaded._sample

    def spy(constraint, temperature, rng, recent=(), repeat_penalty=1.0, bias=None):
        seen_recent.append(list(recent))
        return original(constraint, temperature, rng, recent, repeat_penalty, bias)

    monkeypatch.setattr(loaded, "_sample", spy)
    prompt = loaded.render([{"role": "user", "content": "Weather in Oslo for 3 days, as JSON."}])
    gen = loaded.generate(
        prompt,
        constraint=engine.constraint(compile_schema(schema).gbnf),
        temperature=0.0,
        repeat_penalty=1.3,
        max_tokens=40,
        timeout_s=600,  # bounded by max_tokens; a busy machine must not make it flaky
    )
    value = json.loads(gen.text)
    assert set(value) == {"city", "days"}
    forced = {c.token for c in gen.choices if c.forced}
    free = {c.token for c in gen.choices if not c.forced}
    assert forced and seen_recent
    assert all(set(r) <= free for r in seen_recent)  # forced punctuation never penalised
