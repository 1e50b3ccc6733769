"""The prefix KV cache: a new process restores the system prompt's state from disk."""

from __future__ import annotations

import pytest

from edgeagent.agent.prompt import system_prompt
from edgeagent.config import load_settings
from edgeagent.runtime.local import LocalModel
from edgeagent.runtime.prefix_cache import PrefixCache, stable_prefix_text
from edgeagent.tools.builtin import make_builtin_tools
from edgeagent.tools.context import ToolContext

pytestmark = pytest.mark.model


def _setup(path, tmp_path):
    settings = load_settings(home=tmp_path, n_ctx=1024)
    tools = make_builtin_tools(ToolContext(settings=settings))
    system = system_prompt(tools)
    return settings, system


def test_restored_prefix_gives_the_same_greedy_output(smollm_path, tmp_path):
    settings, system = _setup(smollm_path, tmp_path)
    cache = PrefixCache(tmp_path / "kv")
    messages = [{"role": "system", "content": system}, {"role": "user", "content": "Hi there"}]

    first = LocalModel(smollm_path, settings)
    prefix = stable_prefix_text(first, system)
    assert cache.warm(first, prefix).source == "cold"
    assert cache.warm(first, prefix).source == "memory"
    cold = first.chat(messages, max_tokens=8, temperature=0.0)
    first.close()

    second = LocalModel(smollm_path, settings)
    warm = cache.warm(second, prefix)
    assert warm.source == "disk" and warm.prefix_tokens > 100
    again = second.chat(messages, max_tokens=8, temperature=0.0)
    assert again.cached_prompt_tokens >= warm.prefix_tokens - 1
    assert again.text == cold.text
    second.close()


def test_gemma_prefix_includes_the_folded_system_text(gemma_path, tmp_path):
    settings, system = _setup(gemma_path, tmp_path)
    model = LocalModel(gemma_path, settings)
    prefix = stable_prefix_text(model, system)
    assert system[:40] in prefix  # Gemma folds the system text into the first user turn
    model.close()


def test_damaged_cache_file_is_ignored_and_rebuilt(smollm_path, tmp_path):
    settings, system = _setup(smollm_path, tmp_path)
    cache = PrefixCache(tmp_path / "kv")
    model = LocalModel(smollm_path, settings)
    prefix = stable_prefix_text(model, system)
    cache.warm(model, prefix)
    model.close()
    (state_file,) = (tmp_path / "kv").glob("*.kv")
    state_file.write_bytes(state_file.read_bytes()[:1000])  # truncated
    model = LocalModel(smollm_path, settings)
    assert cache.warm(model, prefix).source == "cold"
    assert state_file.stat().st_size > 1000  # rebuilt
    model.close()
