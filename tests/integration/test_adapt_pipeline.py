"""The learning loop end to end on SmolLM2-135M with a tiny budget: records -> LoRA training on
the runtime's tokens -> GGUF adapter -> loaded by llama.cpp -> the trained answer is likelier.

Needs the ``[adapt]`` extra (torch, transformers, peft), which the README's test command and CI
install; it is not skipped when missing, so a broken install fails here.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgeagent.adapt.dataset import write_jsonl
from edgeagent.adapt.loop import score_examples
from edgeagent.adapt.render import TrainingRenderer
from edgeagent.adapt.train import TrainConfig, train_adapter
from edgeagent.agent.propose import build_tool_registry
from edgeagent.config import load_settings
from edgeagent.errors import AdapterError
from edgeagent.tools.context import ToolContext

pytestmark = [pytest.mark.model, pytest.mark.slow, pytest.mark.timeout(900)]

WORDS = ["ZEBRA", "MAPLE", "COMET", "RIVER", "ORBIT", "TULIP", "EMBER", "QUILL"]


def records(tools, count: int, offset: int = 0) -> list[dict]:
    """Read-a-file records whose answers follow one pattern the base model cannot guess."""
    out = []
    for i in range(offset, offset + count):
        word = f"{WORDS[i % len(WORDS)]}-{i}"
        out.append(
            {
                "messages": [
                    {"role": "user", "content": f"What's the code in box{i}.txt?"},
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "c1",
                                "type": "function",
                                "function": {
                                    "name": "read_file",
                                    "arguments": json.dumps({"path": f"box{i}.txt"}),
                                },
                            }
                        ],
                    },
                    {"role": "tool", "tool_call_id": "c1", "content": f"code: {word}"},
                    {"role": "assistant", "content": f"Box {i} opens with the code {word}."},
                ],
                "tools": tools,
            }
        )
    return out


@pytest.fixture(scope="module")
def trained(smollm_path, tmp_path_factory):
    """One tiny training run shared by the tests below (6 steps of 4 examples)."""
    work = tmp_path_factory.mktemp("adapt")
    settings = load_settings(home=work / "home", allowed_roots=(work,), offline=True)
    registry = build_tool_registry(None, ToolContext(settings=settings, allowed_roots=(work,)))
    tools = registry.to_openai()
    write_jsonl(records(tools, 24), work / "train.jsonl")
    write_jsonl(records(tools, 6, offset=100), work / "heldout.jsonl")
    config = TrainConfig(
        base=smollm_path,
        data=work / "train.jsonl",
        out=work / "adapter.gguf",
        steps=6,
        rank=4,
        alpha=8,
        batch_size=4,
        learning_rate=2e-3,
        checkpoint_every=3,
        time_budget_s=600,
    )
    result = train_adapter(config, settings, registry, progress=False)
    return {
        "work": work,
        "settings": settings,
        "registry": registry,
        "config": config,
        "result": result,
    }


def test_training_writes_a_small_checked_adapter(trained):
    result = trained["result"]
    assert result.steps == 6 and result.stopped_by == "steps"
    assert result.examples == 48  # two assistant turns per record: the call and the answer
    assert result.out.is_file() and result.out.stat().st_size < 10 * 2**20
    assert result.check["tensors"] == 4 * 30  # the attention projections of every layer
    assert result.check["max_logit_shift"] > 0  # it changes llama.cpp's logits
    assert len(result.losses) == 6 and result.last_loss < result.first_loss


def test_the_adapter_makes_held_out_answers_of_the_trained_kind_likelier(trained, smollm_path):
    renderer = TrainingRenderer(smollm_path, trained["settings"], trained["registry"])
    try:
        from edgeagent.adapt.dataset import read_jsonl

        examples, _ = renderer.examples(read_jsonl(trained["work"] / "heldout.jsonl"))
    finally:
        renderer.close()
    base = score_examples(smollm_path, None, examples, threads=2)
    adapted = score_examples(smollm_path, trained["result"].out, examples, threads=2)
    assert adapted.mean_logprob > base.mean_logprob + 0.05
    assert adapted.token_accuracy >= base.token_accuracy


def test_conversion_maps_and_permutes_projections_as_llama_cpp_expects(smollm_path, tmp_path):
    """A random LoRA on the query and key projections (the two llama.cpp stores permuted) moves
    the logits in llama.cpp as it does in transformers: a wrong tensor name, orientation or
    permutation would leave the two shifts unrelated."""
    import peft
    import torch
    import transformers

    from edgeagent.adapt.convert import probe_logits, write_gguf_adapter
    from edgeagent.adapt.train import load_base
    from edgeagent.runtime.local import LocalModel

    text = "The lighthouse keeper climbed the stairs and"
    vocab = LocalModel(smollm_path, load_settings(), vocab_only=True)
    try:
        ids = vocab.llama.tokenize(text.encode(), add_bos=True, special=False)
    finally:
        vocab.close()
    torch.manual_seed(0)
    model = peft.get_peft_model(
        load_base(smollm_path, torch, transformers),
        peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj"]),
    )
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if "lora_" in name:
                weight.normal_(0, 0.05)
    model.eval()
    with torch.no_grad():
        tuned = model(input_ids=torch.tensor([ids])).logits[0, -1].numpy()
        with model.disable_adapter():
            plain = model(input_ids=torch.tensor([ids])).logits[0, -1].numpy()
    state = {k: v.numpy() for k, v in peft.get_peft_model_state_dict(model).items()}
    out = tmp_path / "qk.gguf"
    write_gguf_adapter(state, base_path=smollm_path, alpha=8, training={}, out=out)
    hf_shift = tuned - plain
    cpp_shift = probe_logits(smollm_path, out, text) - probe_logits(smollm_path, None, text)
    assert np.abs(hf_shift).max() > 0.2
    # measured: 0.90 with the mapping as written, 0.06 without the q/k permutation (the rest is
    # llama.cpp computing Q4_1 weights against 8-bit activations)
    assert np.corrcoef(hf_shift, cpp_shift)[0, 1] > 0.7


def test_shared_prefix_batches_give_the_loss_of_whole_sequences(trained, smollm_path):
    import torch
    import transformers

    from edgeagent.adapt.train import Batches, load_base, prepare_examples, shared_prefix_loss

    _, examples, _, _, _ = prepare_examples(
        trained["config"], trained["settings"], trained["registry"]
    )
    prefix, suffixes = Batches(examples, 3, seed=1).batch(0)
    assert len(prefix) > 100  # the system prompt is shared, not recomputed per example
    model = load_base(smollm_path, torch, transformers).eval()
    with torch.no_grad():
        shared = float(shared_prefix_loss(model, prefix, suffixes, torch, "cpu"))
        total, count = 0.0, 0
        for tokens, prompt_len, _decision in suffixes:
            ids = torch.tensor([[*prefix, *tokens]])
            labels = ids.clone()
            labels[:, : len(prefix) + prompt_len] = -100
            targets = len(tokens) - prompt_len
            total += float(model(input_ids=ids, labels=labels).loss) * targets
            count += targets
    assert shared == pytest.approx(total / count, rel=1e-4)


def test_a_decision_example_learns_only_not_to_call(smollm_path, tmp_path):
    """A "learn": "decision" turn gives one example whose loss is -log(1 - P(call start)) at
    the answer's first position, whatever its words."""
    import torch
    import transformers

    from edgeagent.adapt.train import load_base, shared_prefix_loss

    settings = load_settings(home=tmp_path, allowed_roots=(tmp_path,))
    record = {
        "messages": [
            {"role": "user", "content": "Tell me a joke."},
            {"role": "assistant", "content": "No tool for that.", "learn": "decision"},
        ],
        "tools": [],
    }
    renderer = TrainingRenderer(smollm_path, settings)
    try:
        (example,), _ = renderer.examples([record])
        calls = renderer.call_start_tokens()
    finally:
        renderer.close()
    assert example.decision and example.target_len == 1
    model = load_base(smollm_path, torch, transformers).eval()
    with torch.no_grad():
        loss = float(
            shared_prefix_loss(
                model, (), [(example.tokens, example.prompt_len, True)], torch, "cpu", calls
            )
        )
        logits = model(input_ids=torch.tensor([example.tokens])).logits[0, example.prompt_len - 1]
        p_call = float(torch.softmax(logits.float(), -1)[calls].sum())
    assert loss == pytest.approx(-np.log1p(-p_call), rel=1e-3)


def test_training_resumes_from_its_checkpoint(trained):
    from dataclasses import replace

    config = replace(trained["config"], steps=8)
    result = train_adapter(config, trained["settings"], trained["registry"], progress=False)
    assert (result.resumed_from, result.steps, len(result.losses)) == (6, 8, 8)


def test_the_runtime_loads_the_adapter_and_keys_its_caches_on_it(trained, smollm_path):
    from edgeagent.runtime.local import LocalModel
    from edgeagent.runtime.prefix_cache import prefix_key

    settings = trained["settings"]
    base = LocalModel(smollm_path, settings, n_ctx=512)
    adapted = LocalModel(smollm_path, settings.replace(adapter=trained["result"].out), n_ctx=512)
    try:
        assert adapted.adapter is not None and adapted.adapter.rank == 4
        assert adapted.fingerprint != base.fingerprint
        assert prefix_key(adapted, "system") != prefix_key(base, "system")
        messages = [{"role": "user", "content": "What's the code in box3.txt?"}]
        assert adapted.chat(messages, max_tokens=8).output_tokens > 0
    finally:
        base.close()
        adapted.close()


def test_an_adapter_for_another_base_is_refused_before_loading(trained, gemma_path):
    from edgeagent.runtime.local import LocalModel

    settings = trained["settings"].replace(adapter=trained["result"].out)
    with pytest.raises(AdapterError, match="adapter for a llama model, but .* is gemma3"):
        LocalModel(gemma_path, settings)


def test_adapt_eval_activates_an_adapter_that_is_not_worse(trained, smollm_path, monkeypatch):
    from edgeagent.cli import cli

    home = trained["work"] / "cli-home"
    monkeypatch.setenv("EDGEAGENT_HOME", str(home))
    adapter = str(trained["result"].out)
    heldout = str(trained["work"] / "heldout.jsonl")
    runner = CliRunner()
    args = ["adapt", "eval", adapter, "--base", str(smollm_path), "--data", heldout, "--json"]
    report = json.loads(runner.invoke(cli, args, catch_exceptions=False).output)
    assert report["better"] and report["activated"]
    assert load_settings(home=home).adapter == trained["result"].out.resolve()
    info = runner.invoke(cli, ["models", "info", str(smollm_path), "--json"]).output
    assert json.loads(info)["adapter"]["rank"] == 4  # the activated adapter, as run would load it
    runner.invoke(cli, ["adapt", "deactivate"], catch_exceptions=False)
    assert load_settings(home=home).adapter is None
