"""Prefix KV cache: the system prompt and tool schemas are evaluated once, then reused.

In one process the KV cells of the longest common token prefix are kept by the decode loop
(``LocalModel._reuse_prefix``). Across processes the prefix's llama.cpp state is saved to disk
(only the KV data and token ids: not llama-cpp-python's ``LlamaState.scores``, which would be
n_batch x vocab floats, 100-500 MB) under a key of model file, template, prefix text and
llama.cpp version, so any change to one of them is a miss, never a wrong hit.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT = 1
MAGIC = b"EAKV1\n"


@dataclass(frozen=True)
class WarmResult:
    """How the prefix was obtained ("memory", "disk" or "cold") and what it cost."""

    source: str
    prefix_tokens: int
    seconds: float


def _version() -> str:
    import llama_cpp

    return getattr(llama_cpp, "__version__", "?")


def prefix_key(model, prefix_text: str) -> str:
    """Cache key: model file, chat template, prefix text, context size and llama.cpp version."""
    digest = hashlib.sha256()
    for part in (
        model.fingerprint,
        model.template.source,
        prefix_text,
        str(model.n_ctx),
        _version(),
        str(FORMAT),
    ):
        digest.update(part.encode("utf-8", errors="replace"))
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def stable_prefix_text(model, system: str) -> str:
    """The part of every prompt that depends only on the system text (and tools in it).

    Rendering ``[system]`` alone is not enough: some templates (Gemma) fold the system text
    into the first user turn. Render two conversations that differ only in the user turn and
    keep their common beginning.
    """
    first = model.render([{"role": "system", "content": system}, {"role": "user", "content": "A"}])
    second = model.render([{"role": "system", "content": system}, {"role": "user", "content": "B"}])
    length = 0
    for a, b in zip(first, second, strict=False):
        if a != b:
            break
        length += 1
    return first[:length]


class PrefixCache:
    """Saves and restores a prompt prefix's KV state under ``cache_dir``."""

    def __init__(self, cache_dir: Path, max_files: int = 16) -> None:
        self.cache_dir = Path(cache_dir)
        self.max_files = max_files

    def _path(self, key: str) -> Path:
        return self.cache_dir / f"{key}.kv"

    def warm(self, model, prefix_text: str) -> WarmResult:
        """Make the model's context hold ``prefix_text``'s KV state, as cheaply as possible."""
        started = time.perf_counter()
        tokens = model.tokenize(prefix_text)
        llm = model.llama
        path = self._path(prefix_key(model, prefix_text))
        if llm.n_tokens >= len(tokens) and llm.input_ids[: len(tokens)].tolist() == tokens:
            # keep only the prefix's cells, and save them for next time
            if not path.is_file() and llm._ctx.kv_cache_seq_rm(-1, len(tokens), -1):
                llm.n_tokens = len(tokens)
                self._save(model, path, tokens)
            return WarmResult("memory", len(tokens), time.perf_counter() - started)
        if path.is_file() and self._load(model, path, tokens):
            return WarmResult("disk", len(tokens), time.perf_counter() - started)
        llm.n_tokens = 0
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        model._eval(tokens, time.perf_counter() + model.settings.decode_timeout_s)
        self._save(model, path, tokens)
        return WarmResult("cold", len(tokens), time.perf_counter() - started)

    def _load(self, model, path: Path, tokens: list[int]) -> bool:
        """Restore a saved prefix; a stale, foreign or damaged file is deleted and ignored."""
        import llama_cpp

        llm = model.llama
        try:
            data = path.read_bytes()
            if not data.startswith(MAGIC):
                raise ValueError("not a prefix state file")
            (count,) = struct.unpack_from("<Q", data, len(MAGIC))
            start = len(MAGIC) + 8
            saved = np.frombuffer(data, dtype="<i4", count=count, offset=start).tolist()
            if saved != tokens:
                raise ValueError("prefix mismatch")
            blob = data[start + 4 * count :]
            buffer = (ctypes.c_uint8 * len(blob)).from_buffer_copy(blob)
            if llama_cpp.llama_state_set_data(llm._ctx.ctx, buffer, len(blob)) != len(blob):
                raise ValueError("llama.cpp refused the state")
        except Exception:  # noqa: BLE001 - any damage means: recompute
            path.unlink(missing_ok=True)
            llm.n_tokens = 0
            llm._ctx.kv_cache_seq_rm(-1, 0, -1)
            return False
        llm.input_ids[: len(tokens)] = np.asarray(tokens, dtype=llm.input_ids.dtype)
        llm.n_tokens = len(tokens)
        return True

    def _save(self, model, path: Path, tokens: list[int]) -> None:
        """Write the current KV state atomically (temporary name, then rename)."""
        import llama_cpp

        ctx = model.llama._ctx.ctx
        size = llama_cpp.llama_state_get_size(ctx)
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_get_data(ctx, buffer, size)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".tmp{os.getpid()}")
        with temporary.open("wb") as handle:
            handle.write(MAGIC + struct.pack("<Q", len(tokens)))
            handle.write(np.asarray(tokens, dtype="<i4").tobytes())
            handle.write(ctypes.string_at(buffer, written))
        os.replace(temporary, path)
        self._evict()

    def _evict(self) -> None:
        files = sorted(self.cache_dir.glob("*.kv"), key=lambda p: p.stat().st_mtime)
        for old in files[: max(0, len(files) - self.max_files)]:
            old.unlink(missing_ok=True)
