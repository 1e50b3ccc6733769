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
from dataclasses import dataclass
from pathlib import Path

from edgeagent.errors import AdapterError

SIGNATURE_KEY = "edgeagent.base.signature"
BASE_NAME_KEY = "edgeagent.base.name"
TRAINING_KEY = "edgeagent.training"  # JSON: steps, examples, data digest, loss


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


def _field(reader, key: str):
    field = reader.fields.get(key)
    if field is None:
        return None
    return field.contents()


def _reader(path: Path, what: str):
    import gguf

    if not path.is_file():
        raise AdapterError(f"{what} {path} does not exist", "check the path")
    try:
        return gguf.GGUFReader(str(path))
    except Exception as exc:  # noqa: BLE001 - any parse failure means "not a GGUF we can read"
        raise AdapterError(
            f"{what} {path.name} is not a readable GGUF file ({type(exc).__name__}: {exc})",
            "rebuild it with `edgeagent adapt train` or choose another file",
        ) from exc


def base_signature(model_path: Path) -> str:
    """A digest of a model's architecture and tensor names and shapes (not their quantization)."""
    reader = _reader(Path(model_path), "model")
    return signature_of(
        str(_field(reader, "general.architecture")),
        ((t.name, tuple(int(d) for d in t.shape)) for t in reader.tensors),
    )


def signature_of(architecture: str, tensors) -> str:
    """The signature from an architecture and (name, shape) pairs (shape in GGUF order)."""
    digest = hashlib.sha256(architecture.encode())
    for name, shape in sorted(tensors):
        digest.update(f"\0{name}:{'x'.join(str(d) for d in shape)}".encode())
    return digest.hexdigest()[:24]


def read_adapter(path: str | Path) -> AdapterInfo:
    """Read an adapter's header, or raise AdapterError saying why it is not a LoRA adapter."""
    path = Path(path).expanduser().resolve()
    reader = _reader(path, "adapter")
    kind, adapter_type = _field(reader, "general.type"), _field(reader, "adapter.type")
    if kind != "adapter" or adapter_type != "lora":
        raise AdapterError(
            f"{path.name} is not a LoRA adapter (general.type = {kind!r}, adapter.type = "
            f"{adapter_type!r})",
            "pass the base model with --model and the adapter with --adapter",
        )
    alpha = _field(reader, "adapter.lora.alpha")
    pairs: dict[str, dict[str, tuple[int, ...]]] = {}
    for tensor in reader.tensors:
        base, _, part = tensor.name.rpartition(".")
        if part not in ("lora_a", "lora_b"):
            raise AdapterError(f"{path.name}: unexpected tensor {tensor.name!r} in a LoRA adapter")
        pairs.setdefault(base, {})[part] = tuple(int(d) for d in tensor.shape)
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
        architecture=str(_field(reader, "general.architecture")),
        alpha=float(alpha) if alpha is not None else 0.0,
        rank=max(ranks),
        targets=tuple(sorted(pairs)),
        base_signature=_field(reader, SIGNATURE_KEY),
        base_name=_field(reader, BASE_NAME_KEY),
        training=_field(reader, TRAINING_KEY),
        file_size=path.stat().st_size,
    )


def check_adapter(model_path: str | Path, adapter_path: str | Path) -> AdapterInfo:
    """The adapter's info if it fits the model; AdapterError naming the mismatch otherwise."""
    info = read_adapter(adapter_path)
    model_path = Path(model_path)
    reader = _reader(model_path, "model")
    arch = str(_field(reader, "general.architecture"))
    refuse_hint = (
        "train an adapter for this model (edgeagent adapt train --base MODEL) or drop --adapter"
    )
    if info.architecture != arch:
        raise AdapterError(
            f"{info.path.name} is an adapter for a {info.architecture} model, but "
            f"{model_path.name} is {arch}",
            refuse_hint,
        )
    shapes = {t.name: tuple(int(d) for d in t.shape) for t in reader.tensors}
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


def _check_shapes(info: AdapterInfo, shapes: dict, model_name: str) -> None:
    import gguf

    reader = gguf.GGUFReader(str(info.path))
    found: dict[str, dict[str, tuple[int, ...]]] = {}
    for tensor in reader.tensors:
        base, _, part = tensor.name.rpartition(".")
        found.setdefault(base, {})[part] = tuple(int(d) for d in tensor.shape)
    for target, parts in found.items():
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
