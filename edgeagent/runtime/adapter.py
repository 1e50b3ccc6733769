"""GGUF LoRA adapters: what one holds, whether it fits a base model, and loading it in llama.cpp.

An adapter is a GGUF file with ``general.type = "adapter"``, ``adapter.type = "lora"``,
``adapter.lora.alpha`` and, per adapted weight ``W`` of the base, two tensors ``W.lora_a`` (rank x
in) and ``W.lora_b`` (out x rank). llama.cpp checks only the architecture and the shapes; edgeagent
also writes the base model's signature (its architecture, tensor names and shapes, independent of
the quantization), so an adapter trained on one model is refused on another model with the same
architecture and shapes only if the signature differs (a different fine-tune of the same size
would otherwise load and produce nonsense).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from edgeagent.errors import AdapterError

SIGNATURE_KEY = "edgeagent.base.signature"
BASE_NAME_KEY = "edgeagent.base.name"
TRAINING_KEY = "edgeagent.training"
RANK_KEY = "edgeagent.lora.rank"  # llama.cpp reads the rank off the tensors; this is for people  # JSON: steps, examples, data digest, loss


@dataclass(frozen=True)
class AdapterInfo:
    """What a GGUF LoRA adapter file says about itself."""

    path: Path
    architecture: str
    alpha: float
    rank: int
    targets: tuple[str, ...]  # base tensor names it adapts
    base_signature: str | None
    base_name: str | None
    training: str | None
    file_size: int
    shapes: dict = field(default_factory=dict, compare=False, repr=False)  # target -> a/b shapes

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "architecture": self.architecture,
            "alpha": self.alpha,
            "rank": self.rank,
            "tensors": len(self.targets),
            "base_name": self.base_name,
            "base_signature": self.base_signature,
            "training": self.training,
            "file_size": self.file_size,
        }


def _header(path: Path, what: str) -> tuple[dict, dict[str, tuple]]:
    from edgeagent.errors import ModelFileError
    from edgeagent.runtime.gguf_info import read_tensor_table

    if not path.is_file():
        raise AdapterError(f"{what} {path} does not exist", "check the path")
    try:
        return read_tensor_table(path)
    except ModelFileError as exc:
        raise AdapterError(
            f"{what} {path.name} is not a readable GGUF file ({exc.message})",
            "rebuild it with `edgeagent adapt train` or choose another file",
        ) from exc


def base_signature(model_path: Path) -> str:
    """A digest of a model's architecture and tensor names and shapes (not their quantization)."""
    kv, shapes = _header(Path(model_path), "model")
    return signature_of(str(kv.get("general.architecture")), shapes.items())


def signature_of(architecture: str, tensors) -> str:
    """The signature from an architecture and (name, shape) pairs (shape in GGUF order)."""
    digest = hashlib.sha256(architecture.encode())
    for name, shape in sorted(tensors):
        digest.update(f"\0{name}:{'x'.join(str(d) for d in shape)}".encode())
    return digest.hexdigest()[:24]


def read_adapter(path: str | Path) -> AdapterInfo:
    """Read an adapter's header, or raise AdapterError saying why it is not a LoRA adapter."""
    path = Path(path).expanduser().resolve()
    kv, shapes = _header(path, "adapter")
    kind, adapter_type = kv.get("general.type"), kv.get("adapter.type")
    if kind != "adapter" or adapter_type != "lora":
        raise AdapterError(
            f"{path.name} is not a LoRA adapter (general.type = {kind!r}, adapter.type = "
            f"{adapter_type!r})",
            "pass the base model with --model and the adapter with --adapter",
        )
    alpha = kv.get("adapter.lora.alpha")
    pairs = _pairs(path, shapes)
    incomplete = sorted(name for name, parts in pairs.items() if len(parts) != 2)
    if incomplete or not pairs:
        raise AdapterError(
            f"{path.name}: "
            + (f"{incomplete[0]} lacks its lora_a or lora_b" if incomplete else "no tensors"),
            "rebuild the adapter",
        )
    ranks = {parts["lora_a"][1] for parts in pairs.values()}
    return AdapterInfo(
        path=path,
        architecture=str(kv.get("general.architecture")),
        alpha=float(alpha) if alpha is not None else 0.0,
        rank=max(ranks),
        targets=tuple(sorted(pairs)),
        base_signature=kv.get(SIGNATURE_KEY),
        base_name=kv.get(BASE_NAME_KEY),
        training=kv.get(TRAINING_KEY),
        file_size=path.stat().st_size,
        shapes=pairs,
    )


def check_adapter(model_path: str | Path, adapter_path: str | Path) -> AdapterInfo:
    """The adapter's info if it fits the model; AdapterError naming the mismatch otherwise."""
    info = read_adapter(adapter_path)
    model_path = Path(model_path)
    kv, shapes = _header(model_path, "model")
    arch = str(kv.get("general.architecture"))
    refuse_hint = (
        "train an adapter for this model (edgeagent adapt train --base MODEL) or drop --adapter"
    )
    if info.architecture != arch:
        raise AdapterError(
            f"{info.path.name} is an adapter for a {info.architecture} model, but "
            f"{model_path.name} is {arch}",
            refuse_hint,
        )
    for target in info.targets:
        if target not in shapes:
            raise AdapterError(
                f"{info.path.name} adapts {target}, which {model_path.name} does not have",
                refuse_hint,
            )
    signature = signature_of(arch, shapes.items())
    if info.base_signature and info.base_signature != signature:
        raise AdapterError(
            f"{info.path.name} was trained on {info.base_name or 'another model'}, not on "
            f"{model_path.name} (the tensor layouts differ)",
            refuse_hint,
        )
    _check_shapes(info, shapes, model_path.name)
    return info


def _pairs(path: Path, shapes: dict[str, tuple]) -> dict[str, dict[str, tuple]]:
    """The adapter's tensors as {base tensor: {"lora_a": shape, "lora_b": shape}}."""
    pairs: dict[str, dict[str, tuple]] = {}
    for name, shape in shapes.items():
        base, _, part = name.rpartition(".")
        if part not in ("lora_a", "lora_b"):
            raise AdapterError(f"{path.name}: unexpected tensor {name!r} in a LoRA adapter")
        pairs.setdefault(base, {})[part] = shape
    return pairs


def _check_shapes(info: AdapterInfo, shapes: dict, model_name: str) -> None:
    for target, parts in info.shapes.items():
        a, b, w = parts["lora_a"], parts["lora_b"], shapes[target]
        if a[0] != w[0] or b[1] != w[1] or a[1] != b[0]:
            raise AdapterError(
                f"{info.path.name}: {target} has shape {list(w)} in {model_name} but the adapter "
                f"holds {list(a)} x {list(b)}",
                "train an adapter for this model (edgeagent adapt train --base MODEL)",
            )


def attach_adapter(llm, path: Path, scale: float = 1.0):
    """Load an adapter file into a llama.cpp model and apply it to its context; returns the handle.

    llama-cpp-python's own ``lora_path`` turns off mmap for the base weights (a leftover from the
    time adapters were merged into them); the adapter API keeps them mapped.
    """
    import ctypes

    import llama_cpp

    handle = llama_cpp.llama_adapter_lora_init(llm._model.model, str(path).encode("utf-8"))
    if not handle:
        raise AdapterError(
            f"llama.cpp could not load the adapter {path.name}",
            "check it with `edgeagent adapt status`; rebuild it if it is damaged",
        )
    adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(handle)
    scales = (ctypes.c_float * 1)(scale)
    if llama_cpp.llama_set_adapters_lora(llm._ctx.ctx, adapters, 1, scales):
        llama_cpp.llama_adapter_lora_free(handle)
        raise AdapterError(f"llama.cpp could not apply the adapter {path.name}")
    llm._stack.callback(lambda: llama_cpp.llama_adapter_lora_free(handle))
    return handle
