"""GGUF LoRA adapter files: read, checked against a base model, refused with the reason."""

from __future__ import annotations

import numpy as np
import pytest

from edgeagent.config import load_settings, set_config_value
from edgeagent.errors import AdapterError, ConfigError
from edgeagent.runtime.adapter import SIGNATURE_KEY, base_signature, check_adapter, read_adapter


def write_adapter(path, *, arch="llama", signature=None, in_dim=576, target="blk.0.attn_q.weight"):
    """A hand-made LoRA adapter GGUF (rank 2) for one weight of SmolLM2-135M."""
    import gguf

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", 4.0)
    if signature is not None:
        writer.add_string(SIGNATURE_KEY, signature)
    rng = np.random.default_rng(0)
    writer.add_tensor(f"{target}.lora_a", rng.normal(0, 0.02, (2, in_dim)).astype(np.float32))
    writer.add_tensor(f"{target}.lora_b", rng.normal(0, 0.02, (576, 2)).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_base_model_is_not_an_adapter(smollm_path):
    with pytest.raises(AdapterError, match="is not a LoRA adapter"):
        read_adapter(smollm_path)


def test_a_file_that_is_not_gguf_is_refused(tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf at all" * 10)
    with pytest.raises(AdapterError, match="not a readable GGUF"):
        read_adapter(junk)
    with pytest.raises(AdapterError, match="does not exist"):
        read_adapter(tmp_path / "missing.gguf")


def test_a_matching_adapter_is_accepted(smollm_path, tmp_path):
    path = write_adapter(tmp_path / "ok.gguf", signature=base_signature(smollm_path))
    info = check_adapter(smollm_path, path)
    assert (info.rank, info.alpha, info.targets) == (2, 4.0, ("blk.0.attn_q.weight",))


def test_an_adapter_for_another_architecture_is_refused(gemma_path, tmp_path):
    path = write_adapter(tmp_path / "llama.gguf")
    with pytest.raises(AdapterError, match="adapter for a llama model, but .* is gemma3"):
        check_adapter(gemma_path, path)


def test_an_adapter_trained_on_another_base_is_refused(smollm_path, tmp_path):
    path = write_adapter(tmp_path / "other.gguf", signature="0123456789abcdef01234567")
    with pytest.raises(AdapterError, match="was trained on another model"):
        check_adapter(smollm_path, path)


def test_an_adapter_with_wrong_shapes_is_refused(smollm_path, tmp_path):
    with pytest.raises(AdapterError, match="has shape"):
        check_adapter(smollm_path, write_adapter(tmp_path / "shape.gguf", in_dim=100))
    missing = write_adapter(tmp_path / "name.gguf", target="blk.99.attn_q.weight")
    with pytest.raises(AdapterError, match="does not have"):
        check_adapter(smollm_path, missing)


def test_signature_ignores_quantization_but_not_shapes(smollm_path, gemma_path):
    assert base_signature(smollm_path) == base_signature(smollm_path)
    assert base_signature(smollm_path) != base_signature(gemma_path)


def test_set_config_value_keeps_other_lines(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('# mine\nmodel = "x.gguf"\nadapter = "old.gguf"\n', encoding="utf-8")
    set_config_value(tmp_path, "adapter", str(tmp_path / "new.gguf"))
    text = config.read_text(encoding="utf-8")
    assert text.startswith('# mine\nmodel = "x.gguf"\n') and "old.gguf" not in text
    assert load_settings(home=tmp_path).adapter == tmp_path / "new.gguf"
    set_config_value(tmp_path, "adapter", None)
    assert load_settings(home=tmp_path).adapter is None
    with pytest.raises(ConfigError, match="unknown setting"):
        set_config_value(tmp_path, "colour", "red")
