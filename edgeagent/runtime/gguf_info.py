"""Read a GGUF file's header (metadata and tensor table) without loading its weights.

``check_gguf_file`` says whether a file is a complete, loadable GGUF and raises
``ModelFileError`` with a one-line reason when it is not; ``inspect_gguf`` returns the facts
``edgeagent models info`` prints. The header is parsed here with a small streaming reader over
a memory map, using the ``gguf`` package's constants (magic, value types, quantization block
sizes, file types). ``gguf.GGUFReader`` parses every element of every metadata array into its own
numpy object, which takes seconds to tens of seconds on a 262k-token vocabulary; this reader
skips numeric arrays in one step and reads only the tokens it needs, so it takes well under a
second on either tiny model.
"""

from __future__ import annotations

import mmap
import os
import struct
import sys
from array import array
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gguf.constants import (
    GGML_QUANT_SIZES,
    GGUF_DEFAULT_ALIGNMENT,
    GGMLQuantizationType,
    GGUFValueType,
    LlamaFileType,
)

from edgeagent.errors import ModelFileError, ModelNotFoundError

__all__ = ["GGUFInfo", "check_gguf_file", "human_count", "inspect_gguf"]

GGUF_MAGIC_BYTES = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
MAX_DIMS = 4
SMALL_ARRAY_LIMIT = 256  # arrays up to this length are kept as values; longer ones only counted
TOKENS_KEY = "tokenizer.ggml.tokens"
SPECIAL_TOKEN_KEYS = {
    "bos": "tokenizer.ggml.bos_token_id",
    "eos": "tokenizer.ggml.eos_token_id",
    "eot": "tokenizer.ggml.eot_token_id",
    "eom": "tokenizer.ggml.eom_token_id",
    "pad": "tokenizer.ggml.padding_token_id",
    "unk": "tokenizer.ggml.unknown_token_id",
    "sep": "tokenizer.ggml.seperator_token_id",
    "cls": "tokenizer.ggml.cls_token_id",
    "mask": "tokenizer.ggml.mask_token_id",
}

_SCALAR_FORMATS = {
    GGUFValueType.UINT8: "B",
    GGUFValueType.INT8: "b",
    GGUFValueType.UINT16: "H",
    GGUFValueType.INT16: "h",
    GGUFValueType.UINT32: "I",
    GGUFValueType.INT32: "i",
    GGUFValueType.FLOAT32: "f",
    GGUFValueType.BOOL: "?",
    GGUFValueType.UINT64: "Q",
    GGUFValueType.INT64: "q",
    GGUFValueType.FLOAT64: "d",
}
_REDOWNLOAD_HINT = "the download was probably interrupted: delete the file and pull the model again"
_NOT_GGUF_HINT = (
    "pick a .gguf model file (llama.cpp format), or pull one with `edgeagent models pull`"
)


@dataclass(frozen=True)
class GGUFInfo:
    """What a GGUF header says about a model; ``to_dict`` is JSON-safe.

    ``quantization`` is the file type (``Q4_K_M``) and ``quantization_types`` counts tensors per
    storage type (``{"Q4_K": 27, "F32": 109, ...}``). ``special_tokens`` maps a role (bos, eos,
    eot, pad, unk, ...) to ``{"id": int, "text": str | None}``.
    """

    path: str
    file_size: int
    gguf_version: int
    architecture: str | None
    name: str | None
    size_label: str | None
    parameters: int
    parameters_human: str
    quantization: str | None
    quantization_types: dict[str, int]
    context_length: int | None
    embedding_length: int | None
    block_count: int | None
    vocab_size: int | None
    tokenizer_model: str | None
    chat_template: str | None
    chat_template_family: str
    special_tokens: dict[str, dict[str, Any]]
    add_bos_token: bool | None
    add_eos_token: bool | None
    tensor_count: int
    metadata_count: int
    tensor_data_offset: int
    head_count: int | None = None
    head_count_kv: int | None = None

    def kv_bytes_per_token(self) -> int | None:
        """KV-cache bytes one context token costs (f16 keys and values), when the header says."""
        if not (self.block_count and self.embedding_length):
            return None
        heads = self.head_count or 1
        kv_heads = self.head_count_kv or heads
        per_layer = 2 * self.embedding_length * kv_heads // heads
        return self.block_count * per_layer * 2

    @property
    def has_chat_template(self) -> bool:
        return bool(self.chat_template)

    @property
    def bos_token(self) -> str:
        return (self.special_tokens.get("bos") or {}).get("text") or ""

    @property
    def eos_token(self) -> str:
        return (self.special_tokens.get("eos") or {}).get("text") or ""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe dict of every field, plus ``has_chat_template``."""
        data = asdict(self)
        data["has_chat_template"] = self.has_chat_template
        return data


@dataclass(frozen=True)
class _Tensor:
    name: str
    type_name: str
    n_elements: int
    n_bytes: int
    offset: int
    dims: tuple[int, ...] = ()


@dataclass
class _Header:
    version: int
    kv: dict[str, Any]
    tensors: list[_Tensor]
    data_offset: int
    data_end: int
    file_size: int
    token_count: int | None
    token_texts: dict[int, str]


class _Array:
    """A metadata array too long to keep: its element type name and length."""

    __slots__ = ("count", "item_type")

    def __init__(self, item_type: str, count: int) -> None:
        self.item_type = item_type
        self.count = count

    def __len__(self) -> int:
        return self.count


class _Cursor:
    """Reads little- or big-endian GGUF primitives from a buffer, failing cleanly at its end."""

    def __init__(self, buf: Any, size: int, order: str, path: Path) -> None:
        self.buf = buf
        self.size = size
        self.order = order
        self.path = path
        self.pos = 0
        self._u32 = struct.Struct(order + "I")
        self._u64 = struct.Struct(order + "Q")

    def truncated(self, what: str) -> ModelFileError:
        return ModelFileError(
            f"truncated GGUF file {self.path.name}: it ends at byte {self.size:,} "
            f"while reading {what}",
            _REDOWNLOAD_HINT,
        )

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise self.truncated(what)

    def u32(self, what: str) -> int:
        self.need(4, what)
        (value,) = self._u32.unpack_from(self.buf, self.pos)
        self.pos += 4
        return value

    def u64(self, what: str) -> int:
        self.need(8, what)
        (value,) = self._u64.unpack_from(self.buf, self.pos)
        self.pos += 8
        return value

    def string(self, what: str) -> str:
        length = self.u64(what)
        self.need(length, what)
        raw = bytes(self.buf[self.pos : self.pos + length])
        self.pos += length
        return raw.decode("utf-8", errors="replace")

    def scalar(self, vtype: GGUFValueType, what: str) -> Any:
        fmt = struct.Struct(self.order + _SCALAR_FORMATS[vtype])
        self.need(fmt.size, what)
        (value,) = fmt.unpack_from(self.buf, self.pos)
        self.pos += fmt.size
        return value

    def string_array(self, count: int, what: str, offsets: array | None) -> None:
        """Skip ``count`` strings, recording each one's start offset in ``offsets`` if given."""
        buf, size, unpack = self.buf, self.size, self._u64.unpack_from
        pos = self.pos
        for _ in range(count):
            if pos + 8 > size:
                self.pos = pos
                raise self.truncated(what)
            if offsets is not None:
                offsets.append(pos)
            (length,) = unpack(buf, pos)
            pos += 8 + length
        if pos > size:
            raise self.truncated(what)
        self.pos = pos

    def string_at(self, offset: int) -> str:
        (length,) = self._u64.unpack_from(self.buf, offset)
        end = min(offset + 8 + length, self.size)
        return bytes(self.buf[offset + 8 : end]).decode("utf-8", errors="replace")


def _value_type(raw: int, key: str, path: Path) -> GGUFValueType:
    try:
        return GGUFValueType(raw)
    except ValueError:
        raise ModelFileError(
            f"malformed GGUF file {path.name}: metadata key {key!r} has unknown value type {raw}",
            "the file is corrupt or was written by a newer tool than edgeagent's gguf package",
        ) from None


def _read_value(
    cur: _Cursor, vtype: GGUFValueType, key: str, offsets: array | None, depth: int = 0
) -> Any:
    """One metadata value; long arrays come back as ``_Array`` (length only)."""
    what = f"the value of metadata key {key!r}"
    if vtype == GGUFValueType.STRING:
        return cur.string(what)
    if vtype in _SCALAR_FORMATS:
        return cur.scalar(vtype, what)
    # An array: element type, length, elements.
    if depth > 2:
        raise ModelFileError(
            f"malformed GGUF file {cur.path.name}: metadata key {key!r} nests arrays too deeply",
            _REDOWNLOAD_HINT,
        )
    item_type = _value_type(cur.u32(what), key, cur.path)
    count = cur.u64(what)
    remaining = cur.size - cur.pos
    if item_type in _SCALAR_FORMATS:
        item_size = struct.calcsize(_SCALAR_FORMATS[item_type])
        if count * item_size > remaining:
            raise cur.truncated(f"{what} ({count:,} items)")
        if count <= SMALL_ARRAY_LIMIT:
            return [cur.scalar(item_type, what) for _ in range(count)]
        cur.pos += count * item_size
        return _Array(item_type.name, count)
    min_size = 8 if item_type == GGUFValueType.STRING else 12
    if count * min_size > remaining:
        raise cur.truncated(f"{what} ({count:,} items)")
    if item_type == GGUFValueType.STRING:
        if count <= SMALL_ARRAY_LIMIT and offsets is None:
            return [cur.string(what) for _ in range(count)]
        cur.string_array(count, what, offsets)
        return _Array(item_type.name, count)
    for _ in range(count):
        _read_value(cur, item_type, key, None, depth + 1)
    return _Array(item_type.name, count)


def _read_tensor_info(cur: _Cursor, index: int, total: int) -> tuple[str, int, list[int], int, int]:
    what = f"tensor info {index + 1} of {total}"
    name = cur.string(what)
    what = f"tensor info {index + 1} of {total} ({name!r})"
    n_dims = cur.u32(what)
    if n_dims > MAX_DIMS:
        raise ModelFileError(
            f"malformed GGUF file {cur.path.name}: tensor {name!r} has {n_dims} dimensions "
            f"(GGUF allows at most {MAX_DIMS})",
            _REDOWNLOAD_HINT,
        )
    dims = [cur.u64(what) for _ in range(n_dims)]
    raw_type = cur.u32(what)
    offset = cur.u64(what)
    return name, raw_type, dims, offset, cur.pos


def _tensor(path: Path, name: str, raw_type: int, dims: list[int], offset: int) -> _Tensor:
    try:
        qtype = GGMLQuantizationType(raw_type)
        block_size, type_size = GGML_QUANT_SIZES[qtype]
    except (ValueError, KeyError):
        raise ModelFileError(
            f"unsupported GGUF file {path.name}: tensor {name!r} has unknown type {raw_type}",
            "it was probably written by a newer llama.cpp: upgrade llama-cpp-python and gguf",
        ) from None
    n_elements = 1
    for dim in dims:
        n_elements *= dim
    if dims and dims[0] % block_size:
        raise ModelFileError(
            f"malformed GGUF file {path.name}: tensor {name!r} row length {dims[0]} is not a "
            f"multiple of the {qtype.name} block size {block_size}",
            _REDOWNLOAD_HINT,
        )
    n_bytes = n_elements * type_size // block_size
    return _Tensor(name, qtype.name, n_elements, n_bytes, offset, tuple(dims))


def _stat(path: Path) -> os.stat_result:
    """The file's stat, after the checks that need no reading."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ModelNotFoundError(
            f"model file not found: {path}",
            "check the path, or use a catalog id (see `edgeagent models list`)",
        ) from None
    except OSError as exc:
        raise ModelFileError(f"cannot read model file {path}: {exc.strerror or exc}") from None
    if path.is_dir():
        raise ModelFileError(
            f"{path} is a directory, not a GGUF file", "give the path of the .gguf file inside it"
        )
    if not path.is_file():
        raise ModelFileError(f"{path} is not a regular file", _NOT_GGUF_HINT)
    if st.st_size == 0:
        raise ModelFileError(f"empty model file {path.name} (0 bytes)", _REDOWNLOAD_HINT)
    return st


def _describe_start(head: bytes) -> str:
    """How a non-GGUF file starts, for the error message."""
    text = head[:16]
    if head.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer, not the model"
    if head.lstrip().lower().startswith((b"<!doctype", b"<html")):
        return "an HTML page, not the model"
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive, not the model"
    return f"starts with {text!r}"


def _byte_order(head: bytes, path: Path) -> str:
    """``<`` or ``>``: the byte order that gives a supported version; raises otherwise."""
    (little,) = struct.unpack_from("<I", head, 4)
    (big,) = struct.unpack_from(">I", head, 4)
    if little in SUPPORTED_VERSIONS:
        order = "<"
    elif big in SUPPORTED_VERSIONS:
        order = ">"
    else:
        version = little if little & 0xFFFF else big
        raise ModelFileError(
            f"unsupported GGUF version {version} in {path.name} (edgeagent reads versions "
            f"{' and '.join(map(str, SUPPORTED_VERSIONS))})",
            "convert the model again with a current llama.cpp, or download a newer GGUF",
        )
    host = "<" if sys.byteorder == "little" else ">"
    if order != host:
        kind = "big" if order == ">" else "little"
        raise ModelFileError(
            f"GGUF file {path.name} is {kind}-endian; llama.cpp on this machine cannot load it",
            f"download the {sys.byteorder}-endian version of the model",
        )
    return order


def _parse(path: Path, token_ids_wanted: bool = True) -> _Header:
    """Parse the header (metadata + tensor table) and check it fits the file."""
    st = _stat(path)
    size = st.st_size
    try:
        with open(path, "rb") as fh:
            head = fh.read(24)
            if not head.startswith(GGUF_MAGIC_BYTES):
                if GGUF_MAGIC_BYTES.startswith(head):
                    raise ModelFileError(
                        f"truncated GGUF file {path.name}: only {size} bytes", _REDOWNLOAD_HINT
                    )
                raise ModelFileError(
                    f"not a GGUF file: {path.name} {_describe_start(head)}", _NOT_GGUF_HINT
                )
            if size < 24:
                raise ModelFileError(
                    f"truncated GGUF file {path.name}: only {size} bytes, the header needs 24",
                    _REDOWNLOAD_HINT,
                )
            order = _byte_order(head, path)
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _parse_buffer(path, buf, size, order, token_ids_wanted)
    except ModelFileError:
        raise
    except (OSError, ValueError, struct.error, OverflowError, IndexError, MemoryError) as exc:
        raise ModelFileError(
            f"cannot read GGUF file {path.name}: {exc}", "the file may be corrupt"
        ) from None


def _parse_buffer(path: Path, buf: Any, size: int, order: str, token_ids_wanted: bool) -> _Header:
    cur = _Cursor(buf, size, order, path)
    cur.pos = 4
    version = cur.u32("the version")
    tensor_count = cur.u64("the tensor count")
    kv_count = cur.u64("the metadata count")
    # Each metadata pair takes at least 12 bytes and each tensor info at least 24.
    if kv_count * 12 + tensor_count * 24 > size - cur.pos:
        raise cur.truncated(
            f"the header ({kv_count:,} metadata keys and {tensor_count:,} tensors announced)"
        )
    kv: dict[str, Any] = {}
    token_offsets: array | None = array("Q") if token_ids_wanted else None
    token_count: int | None = None
    for index in range(kv_count):
        key = cur.string(f"metadata key {index + 1} of {kv_count}")
        vtype = _value_type(cur.u32(f"the type of metadata key {key!r}"), key, path)
        if key in kv:
            raise ModelFileError(
                f"malformed GGUF file {path.name}: metadata key {key!r} appears twice",
                _REDOWNLOAD_HINT,
            )
        is_tokens = key == TOKENS_KEY and vtype == GGUFValueType.ARRAY
        value = _read_value(cur, vtype, key, token_offsets if is_tokens else None)
        if is_tokens:
            token_count = len(value)
        kv[key] = value

    infos = [_read_tensor_info(cur, i, tensor_count) for i in range(tensor_count)]
    alignment = kv.get("general.alignment", GGUF_DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise ModelFileError(
            f"malformed GGUF file {path.name}: general.alignment {alignment!r} is not a power of two",
            _REDOWNLOAD_HINT,
        )
    data_offset = cur.pos + (-cur.pos % alignment)
    tensors: list[_Tensor] = []
    names: set[str] = set()
    data_end = data_offset if infos else cur.pos
    for name, raw_type, dims, offset, _ in infos:
        if name in names:
            raise ModelFileError(
                f"malformed GGUF file {path.name}: tensor {name!r} appears twice", _REDOWNLOAD_HINT
            )
        names.add(name)
        tensor = _tensor(path, name, raw_type, dims, offset)
        if offset % alignment:
            raise ModelFileError(
                f"malformed GGUF file {path.name}: tensor {name!r} data offset {offset} is not "
                f"aligned to {alignment} bytes",
                _REDOWNLOAD_HINT,
            )
        data_end = max(data_end, data_offset + offset + tensor.n_bytes)
        tensors.append(tensor)
    if data_end > size:
        raise ModelFileError(
            f"truncated GGUF file {path.name}: the header describes {data_end:,} bytes but the "
            f"file has {size:,} ({100 * size / data_end:.1f}% present)",
            _REDOWNLOAD_HINT,
        )

    token_texts: dict[int, str] = {}
    if token_offsets is not None and len(token_offsets):
        for key in SPECIAL_TOKEN_KEYS.values():
            token_id = kv.get(key)
            if isinstance(token_id, int) and 0 <= token_id < len(token_offsets):
                token_texts[token_id] = cur.string_at(token_offsets[token_id])
    return _Header(version, kv, tensors, data_offset, data_end, size, token_count, token_texts)


def check_gguf_file(path: str | os.PathLike[str]) -> None:
    """Raise unless ``path`` is a complete GGUF llama.cpp can try to load.

    Checks, in order: the file exists (``ModelNotFoundError`` if not), is a regular non-empty
    file, starts with the GGUF magic, has a supported version and byte order, has a parseable
    metadata section and tensor table, and is at least as long as the tensor data the header
    describes. Every failure is a ``ModelFileError`` with a one-line message and a hint. Reads
    only the header; takes well under a second on a 250 MB model.
    """
    path = Path(path).expanduser()
    header = _parse(path, token_ids_wanted=False)
    if not header.tensors:
        raise ModelFileError(
            f"GGUF file {path.name} has no tensors (a vocabulary-only file?)",
            "pick a full model file",
        )
    if not isinstance(header.kv.get("general.architecture"), str):
        raise ModelFileError(
            f"GGUF file {path.name} has no general.architecture, so llama.cpp cannot load it",
            "convert the model again with a current llama.cpp",
        )


def read_tensor_table(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, tuple]]:
    """A GGUF's metadata (long arrays summarized) and its tensors' shapes (GGUF order: ne0
    first), from the header alone: fast even for a large vocabulary."""
    header = _parse(Path(path).expanduser(), token_ids_wanted=False)
    return header.kv, {t.name: t.dims for t in header.tensors}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def human_count(n: int) -> str:
    """A parameter count the way model names say it: 135M, 1.5B, 12K."""
    if n >= 1_000_000_000:
        return f"{n / 1e9:.1f}".rstrip("0").rstrip(".") + "B"
    if n >= 1_000_000:
        return f"{round(n / 1e6)}M"
    if n >= 1_000:
        return f"{round(n / 1e3)}K"
    return str(n)


def _file_type_name(value: Any, tensors: list[_Tensor]) -> str | None:
    """``general.file_type`` as a name (Q4_K_M); else the commonest quantized tensor type."""
    if isinstance(value, int) and not isinstance(value, bool):
        code = value & ~LlamaFileType.GUESSED.value
        try:
            name = LlamaFileType(code).name
        except ValueError:
            return f"file type {code}"
        return name.removeprefix("MOSTLY_").removeprefix("ALL_")
    weights = Counter(t.type_name for t in tensors if t.type_name not in ("F32", "F16", "BF16"))
    if weights:
        return weights.most_common(1)[0][0]
    types = Counter(t.type_name for t in tensors)
    return types.most_common(1)[0][0] if types else None


def inspect_gguf(path: str | os.PathLike[str]) -> GGUFInfo:
    """The facts about a GGUF model, from its header only (no weights loaded).

    Raises ``ModelNotFoundError`` for a missing file and ``ModelFileError`` for anything that is
    not a complete GGUF (see ``check_gguf_file``).
    """
    from edgeagent.runtime.chat_family import detect_chat_family

    path = Path(path).expanduser()
    header = _parse(path)
    kv = header.kv
    arch = _str(kv.get("general.architecture"))

    def arch_key(suffix: str) -> int | None:
        return _int(kv.get(f"{arch}.{suffix}")) if arch else None

    parameters = _int(kv.get("general.parameter_count")) or sum(
        t.n_elements for t in header.tensors
    )
    vocab_size = header.token_count if header.token_count is not None else arch_key("vocab_size")
    template = _str(kv.get("tokenizer.chat_template")) or None
    name = _str(kv.get("general.name"))
    special: dict[str, dict[str, Any]] = {}
    for role, key in SPECIAL_TOKEN_KEYS.items():
        token_id = _int(kv.get(key))
        if token_id is not None:
            special[role] = {"id": token_id, "text": header.token_texts.get(token_id)}
    return GGUFInfo(
        path=str(path),
        file_size=header.file_size,
        gguf_version=header.version,
        architecture=arch,
        name=name,
        size_label=_str(kv.get("general.size_label")),
        parameters=parameters,
        parameters_human=human_count(parameters),
        quantization=_file_type_name(kv.get("general.file_type"), header.tensors),
        quantization_types=dict(Counter(t.type_name for t in header.tensors).most_common()),
        context_length=arch_key("context_length"),
        embedding_length=arch_key("embedding_length"),
        block_count=arch_key("block_count"),
        vocab_size=vocab_size,
        tokenizer_model=_str(kv.get("tokenizer.ggml.model")),
        chat_template=template,
        chat_template_family=detect_chat_family(template, arch, name),
        special_tokens=special,
        add_bos_token=_bool(kv.get("tokenizer.ggml.add_bos_token")),
        add_eos_token=_bool(kv.get("tokenizer.ggml.add_eos_token")),
        tensor_count=len(header.tensors),
        metadata_count=len(kv),
        tensor_data_offset=header.data_offset,
        head_count=arch_key("attention.head_count"),
        head_count_kv=arch_key("attention.head_count_kv"),
    )
