"""Sampling at temperature 1.0 under each built-in tool's grammar, on both real tiny models,
yields only calls that pass the tool's own schema validation."""

from __future__ import annotations

import json

import pytest

from edgeagent.config import load_settings
from edgeagent.grammar.envelope import build_envelope, parse_envelope
from edgeagent.runtime.engines import LLGuidanceEngine
from edgeagent.runtime.local import LocalModel
from edgeagent.tools.builtin import make_builtin_tools
from edgeagent.tools.context import ToolContext

pytestmark = pytest.mark.model


def clamp_lengths(schema, cap: int = 32):
    """The same schema with string maxLength clamped, so temperature-1.0 walks stay short.

    A clamped schema only narrows the language, so its outputs must still pass the real tool's
    validation; the long-string behaviour is covered by the compiler's own tests.
    """
    if isinstance(schema, dict):
        out = {k: clamp_lengths(v, cap) for k, v in schema.items()}
        if isinstance(out.get("maxLength"), int):
            out["maxLength"] = min(out["maxLength"], cap)
        return out
    if isinstance(schema, list):
        return [clamp_lengths(v, cap) for v in schema]
    return schema


def test_temperature_one_under_every_builtin_grammar(tiny_model_path, tmp_path):
    settings = load_settings(home=tmp_path, n_ctx=1024, allowed_roots=(tmp_path,))
    tools = make_builtin_tools(ToolContext(settings=settings))
    model = LocalModel(tiny_model_path, settings)
    engine = LLGuidanceEngine(model.llama, model.fingerprint)
    prompt = model.render([{"role": "user", "content": "Use a tool."}])
    try:
        for index, tool in enumerate(tools):
            envelope = build_envelope(
                [(tool.name, clamp_lengths(tool.parameters))], mode=tool.name, string_cap=16
            )
            gen = model.generate(
                prompt,
                constraint=engine.constraint(envelope.gbnf),
                temperature=1.0,
                max_tokens=160,
                seed=index,
            )
            assert gen.finish_reason == "grammar", (tool.name, gen.finish_reason, gen.text)
            (call,) = parse_envelope(gen.text)
            assert call.name == tool.name
            tool.validate_arguments(call.arguments)  # raises ToolValidationError if invalid
            json.dumps(call.arguments)
    finally:
        model.close()
