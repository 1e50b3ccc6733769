"""A PEFT LoRA (Hugging Face names and layout) -> a GGUF LoRA adapter llama.cpp loads.

As llama.cpp's ``convert_lora_to_gguf.py`` does: each ``...layers.N.self_attn.q_proj`` pair of
``lora_A`` (rank x in) and ``lora_B`` (out x rank) becomes ``blk.N.attn_q.weight.lora_a`` and
``.lora_b`` (names from gguf-py's ``TensorNameMap`` for the base's architecture); on the llama
architecture the rows of the query and key projections are permuted for llama.cpp's rotary
layout, so ``lora_B`` of ``q_proj``/``k_proj`` is permuted the same way (``lora_A`` is on the
input side and stays). The file carries ``adapter.lora.alpha``, and edgeagent's own keys: the
base's signature and name, and what it was trained on. ``write_gguf_adapter`` writes to a
temporary file, checks that llama.cpp loads it on the base and that it changes the logits, and
only then moves it into place.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from edgeagent.errors import AdapterError
from edgeagent.runtime.adapter import (
    BASE_NAME_KEY,
    RANK_KEY,
    SIGNATURE_KEY,
    TRAINING_KEY,
    base_signature,
)

# architectures whose Hugging Face -> GGUF conversion permutes q/k rows (convert_hf_to_gguf.py)
PERMUTED_QK = {"llama"}
# architectures whose conversion leaves the adapted projections as they are
PLAIN = {"qwen2", "qwen3", "gemma2", "gemma3", "phi3", "mistral"}


def _metadata(path: Path) -> dict:
    from edgeagent.runtime.gguf_info import read_tensor_table

    return read_tensor_table(path)[0]


def _permute(weights: np.ndarray, n_head: int) -> np.ndarray:
    """convert_hf_to_gguf's LlamaModel.permute on the rows of ``weights``."""
    rows = weights.shape[0]
    return (
        weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def gguf_pairs(
    state: dict[str, np.ndarray], base_path: Path
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """PEFT ``lora_A``/``lora_B`` arrays by Hugging Face module -> (A, B) by GGUF base tensor."""
    import gguf

    kv = _metadata(base_path)
    arch = str(kv.get("general.architecture"))
    if arch not in PERMUTED_QK | PLAIN:
        raise AdapterError(
            f"converting adapters for the {arch} architecture is not supported yet",
            f"supported: {', '.join(sorted(PERMUTED_QK | PLAIN))}",
        )
    arch_enum = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch)
    blocks = int(kv[f"{arch}.block_count"])
    names = gguf.TensorNameMap(arch_enum, blocks)
    n_head = int(kv[f"{arch}.attention.head_count"])
    n_head_kv = int(kv.get(f"{arch}.attention.head_count_kv") or n_head)
    modules: dict[str, dict[str, np.ndarray]] = {}
    for key, array in state.items():
        module, _, rest = key.partition(".lora_")
        if not rest:
            continue
        part = rest.split(".")[0]  # "A" or "B"
        module = module.removeprefix("base_model.model.")
        modules.setdefault(module, {})[part] = np.asarray(array, dtype=np.float32)
    out = {}
    for module, parts in sorted(modules.items()):
        if set(parts) != {"A", "B"}:
            raise AdapterError(f"the PEFT adapter lacks lora_A or lora_B for {module}")
        target = names.get_name(module + ".weight", try_suffixes=(".weight",))
        if target is None:
            raise AdapterError(f"no GGUF tensor name for {module} on {arch}")
        a, b = parts["A"], parts["B"]
        if arch in PERMUTED_QK and module.endswith("q_proj"):
            b = _permute(b, n_head)
        elif arch in PERMUTED_QK and module.endswith("k_proj"):
            b = _permute(b, n_head_kv)
        out[target] = (a, b)
    return out


def _write(pairs, base_path: Path, alpha: float, training: dict, out: Path) -> None:
    import gguf

    kv = _metadata(base_path)
    arch = str(kv.get("general.architecture"))
    writer = gguf.GGUFWriter(str(out), arch)
    writer.add_string("general.type", "adapter")
    writer.add_string("general.name", f"edgeagent LoRA for {base_path.name}")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(alpha))
    writer.add_uint32(RANK_KEY, int(next(iter(pairs.values()))[0].shape[0]))
    writer.add_string(SIGNATURE_KEY, base_signature(base_path))
    writer.add_string(BASE_NAME_KEY, str(kv.get("general.name") or base_path.name))
    writer.add_string(TRAINING_KEY, json.dumps(training, sort_keys=True))
    for target, (a, b) in pairs.items():
        # f32: f16 tensors made llama.cpp convert activations for every product (2-3% slower)
        writer.add_tensor(f"{target}.lora_a", a.astype(np.float32))
        writer.add_tensor(f"{target}.lora_b", b.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def probe_logits(model_path: Path, adapter: Path | None, text: str = "Hello, how are you?"):
    """The last-position logits of a short text with (or without) the adapter, in llama.cpp."""
    import llama_cpp

    from edgeagent.runtime.adapter import attach_adapter
    from edgeagent.runtime.cpu_quirks import apply_cpu_quirks

    apply_cpu_quirks()
    llm = llama_cpp.Llama(
        model_path=str(model_path), n_ctx=256, n_threads=2, verbose=False, logits_all=False
    )
    try:
        if adapter is not None:
            attach_adapter(llm, adapter)
        tokens = llm.tokenize(text.encode(), add_bos=True, special=False)
        llm.eval(tokens)
        pointer = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(llm.n_vocab(),)).astype(np.float32).copy()
    finally:
        llm.close()


def write_gguf_adapter(
    state: dict[str, np.ndarray], *, base_path: Path, alpha: float, training: dict, out: Path
) -> dict:
    """Convert, check that llama.cpp loads the result and that it moves the logits, then write
    ``out``; returns what the check measured. Nothing is left at ``out`` if a step fails."""
    from edgeagent.runtime.adapter import check_adapter

    out = Path(out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.part")
    try:
        _write(gguf_pairs(state, base_path), base_path, alpha, training, tmp)
        info = check_adapter(base_path, tmp)
        base = probe_logits(base_path, None)
        adapted = probe_logits(base_path, tmp)
        if not np.isfinite(adapted).all():
            raise AdapterError("the converted adapter makes llama.cpp's logits not finite")
        shift = float(np.abs(adapted - base).max())
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return {"tensors": len(info.targets), "rank": info.rank, "max_logit_shift": shift}
