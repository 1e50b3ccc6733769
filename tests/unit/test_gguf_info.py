"""GGUF inspection: real facts from the two tiny models, a clear error for every bad file."""

from __future__ import annotations

import json
import random
import shutil
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader, GGUFValueType, GGUFWriter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jinja2.sandbox import ImmutableSandboxedEnvironment

from edgeagent.errors import EdgeAgentError, ModelFileError, ModelNotFoundError
from edgeagent.runtime.chat_family import (
    CHAT_FAMILIES,
    FALLBACK_TEMPLATES,
    detect_chat_family,
    family_stop_strings,
)
from edgeagent.runtime.gguf_info import check_gguf_file, human_count, inspect_gguf

# --- helpers -------------------------------------------------------------------------------


def _copy_prefix(src: Path, dst: Path, n_bytes: int) -> Path:
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        fout.write(fin.read(n_bytes))
    return dst


def _gguf_string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _kv(key: str, vtype: int, payload: bytes) -> bytes:
    return _gguf_string(key) + struct.pack("<I", vtype) + payload


def _raw_gguf(
    kvs: list[bytes],
    tensors: list[tuple[str, list[int], int, int]] = (),
    data: bytes = b"",
    version: int = 3,
    align: int = 32,
) -> bytes:
    """A GGUF built byte by byte, so malformed variants are easy to make."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs)) + b"".join(kvs)
    for name, dims, ggml_type, offset in tensors:
        out += _gguf_string(name) + struct.pack("<I", len(dims))
        out += b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", ggml_type, offset)
    out += b"\0" * (-len(out) % align)
    return out + data


ARCH_KV = _kv("general.architecture", GGUFValueType.STRING, _gguf_string("llama"))
F32_TENSOR = ("w", [8], 0, 0)  # 8 float32 = 32 bytes at offset 0


def _write(tmp_path: Path, data: bytes, name: str = "model.gguf") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _expect_error(path: Path, *fragments: str, error: type = ModelFileError) -> str:
    """Both entry points raise ``error``; its one-line message contains every fragment."""
    with pytest.raises(error) as checked:
        check_gguf_file(path)
    with pytest.raises(error) as inspected:
        inspect_gguf(path)
    message = checked.value.message
    assert inspected.value.message == message
    assert "\n" not in message
    assert checked.value.hint
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.fixture
def synthetic_gguf(tmp_path) -> Path:
    """A small valid GGUF written by the gguf package itself."""
    path = tmp_path / "synthetic.gguf"
    writer = GGUFWriter(str(path), arch="qwen2")
    writer.add_name("Synthetic Qwen2.5 Test")
    writer.add_context_length(4096)
    writer.add_embedding_length(16)
    writer.add_block_count(2)
    writer.add_uint64("general.parameter_count", 1_234_567_890)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([f"tok{i}" for i in range(300)])
    writer.add_bos_token_id(7)
    writer.add_eos_token_id(299)
    writer.add_chat_template("{% for m in messages %}<|im_start|>{{ m['role'] }}{% endfor %}")
    writer.add_tensor("token_embd.weight", np.zeros((300, 16), dtype=np.float32))
    writer.add_tensor("output_norm.weight", np.ones(16, dtype=np.float16))
    writer.add_tensor("output.weight", np.zeros((300, 16), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


# --- bad input -----------------------------------------------------------------------------


def test_missing_file_is_model_not_found(tmp_path):
    message = _expect_error(tmp_path / "nope.gguf", "not found", error=ModelNotFoundError)
    assert "nope.gguf" in message


def test_directory_is_rejected(tmp_path):
    _expect_error(tmp_path, "is a directory")


def test_zero_byte_file(tmp_path):
    _expect_error(_write(tmp_path, b""), "empty", "0 bytes")


def test_random_bytes(tmp_path):
    data = random.Random(1234).randbytes(4096)
    assert not data.startswith(b"GGUF")
    _expect_error(_write(tmp_path, data), "not a GGUF file", "starts with")


def test_text_file_renamed_gguf(tmp_path):
    path = _write(tmp_path, b"hello, I am a text file\n" * 20, "notes.gguf")
    message = _expect_error(path, "not a GGUF file", "notes.gguf")
    assert "b'hello, I am a te'" in message


def test_git_lfs_pointer_and_html_page_are_named(tmp_path):
    lfs = b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 98362432\n"
    _expect_error(_write(tmp_path, lfs, "lfs.gguf"), "Git LFS pointer")
    html = b"<!DOCTYPE html><html><body>Rate limited</body></html>"
    _expect_error(_write(tmp_path, html, "page.gguf"), "HTML page")


@pytest.mark.parametrize("data", [b"G", b"GGU", b"GGUF", b"GGUF\x03\x00\x00\x00\x00"])
def test_file_cut_inside_the_fixed_header(tmp_path, data):
    _expect_error(_write(tmp_path, data), "truncated GGUF file")


@pytest.mark.parametrize("version", [1, 4, 99])
def test_unsupported_version(tmp_path, version):
    path = _write(tmp_path, _raw_gguf([ARCH_KV], [F32_TENSOR], b"\0" * 32, version=version))
    _expect_error(path, f"unsupported GGUF version {version}", "versions 2 and 3")


def test_version_2_is_accepted(tmp_path):
    path = _write(tmp_path, _raw_gguf([ARCH_KV], [F32_TENSOR], b"\0" * 32, version=2))
    check_gguf_file(path)
    assert inspect_gguf(path).gguf_version == 2


def test_big_endian_file_is_rejected_on_little_endian_host(tmp_path):
    data = b"GGUF" + struct.pack(">IQQ", 3, 0, 0)
    _expect_error(_write(tmp_path, data), "big-endian")


def test_header_promising_more_than_the_file_holds(tmp_path):
    data = b"GGUF" + struct.pack("<IQQ", 3, 10**12, 10**12) + b"\0" * 64
    _expect_error(_write(tmp_path, data), "truncated GGUF file", "announced")


def test_array_longer_than_the_file(tmp_path):
    huge_tokens = _kv(
        "tokenizer.ggml.tokens",
        GGUFValueType.ARRAY,
        struct.pack("<IQ", GGUFValueType.STRING, 2**60) + _gguf_string("a"),
    )
    path = _write(tmp_path, _raw_gguf([ARCH_KV, huge_tokens]))
    _expect_error(path, "truncated GGUF file", "tokenizer.ggml.tokens")


def test_string_longer_than_the_file(tmp_path):
    bad = _gguf_string("general.name") + struct.pack("<IQ", GGUFValueType.STRING, 10**9) + b"abc"
    path = _write(tmp_path, b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + bad)
    _expect_error(path, "truncated GGUF file", "general.name")


def test_unknown_metadata_value_type(tmp_path):
    path = _write(tmp_path, _raw_gguf([ARCH_KV, _kv("x.y", 77, b"\0" * 8)], [F32_TENSOR]))
    _expect_error(path, "unknown value type 77", "'x.y'")


def test_duplicate_metadata_key(tmp_path):
    path = _write(tmp_path, _raw_gguf([ARCH_KV, ARCH_KV], [F32_TENSOR], b"\0" * 32))
    _expect_error(path, "appears twice")


def test_unknown_tensor_type(tmp_path):
    path = _write(tmp_path, _raw_gguf([ARCH_KV], [("w", [8], 250, 0)], b"\0" * 32))
    _expect_error(path, "unknown type 250", "'w'")


def test_too_many_tensor_dimensions(tmp_path):
    path = _write(tmp_path, _raw_gguf([ARCH_KV], [("w", [1, 1, 1, 1, 1], 0, 0)], b"\0" * 32))
    _expect_error(path, "5 dimensions")


def test_misaligned_tensor_offset(tmp_path):
    path = _write(tmp_path, _raw_gguf([ARCH_KV], [("w", [8], 0, 4)], b"\0" * 64))
    _expect_error(path, "not aligned")


def test_missing_tensor_data(tmp_path):
    path = _write(tmp_path, _raw_gguf([ARCH_KV], [F32_TENSOR], b"\0" * 31))
    _expect_error(path, "truncated GGUF file", "describes")


def test_no_tensors_or_no_architecture_fails_the_check_but_still_inspects(tmp_path):
    vocab_only = _write(tmp_path, _raw_gguf([ARCH_KV]), "vocab.gguf")
    with pytest.raises(ModelFileError, match="no tensors"):
        check_gguf_file(vocab_only)
    assert inspect_gguf(vocab_only).tensor_count == 0
    no_arch = _write(tmp_path, _raw_gguf([], [F32_TENSOR], b"\0" * 32), "noarch.gguf")
    with pytest.raises(ModelFileError, match=r"no general\.architecture"):
        check_gguf_file(no_arch)
    assert inspect_gguf(no_arch).architecture is None


def test_truncated_copy_of_real_model_in_metadata(smollm_path, tmp_path):
    """The first 1 MB of SmolLM2 ends inside the tokenizer arrays."""
    path = _copy_prefix(smollm_path, tmp_path / "smol-1mb.gguf", 1 << 20)
    _expect_error(path, "truncated GGUF file", "1,048,576", "tokenizer.ggml")


def test_truncated_copy_of_real_model_in_tensor_table(smollm_path, tmp_path):
    cut = inspect_gguf(smollm_path).tensor_data_offset - 200
    path = _copy_prefix(smollm_path, tmp_path / "smol-table.gguf", cut)
    _expect_error(path, "truncated GGUF file", "tensor info")


def test_header_only_copy_of_real_model(smollm_path, tmp_path):
    """The whole header and not one byte of weights."""
    header_size = inspect_gguf(smollm_path).tensor_data_offset
    path = _copy_prefix(smollm_path, tmp_path / "smol-header.gguf", header_size)
    message = _expect_error(path, "truncated GGUF file", "98,362,432", f"{header_size:,}")
    assert "1.8% present" in message


def test_real_model_missing_its_last_bytes(smollm_path, tmp_path):
    path = tmp_path / "smol-short.gguf"
    shutil.copyfile(smollm_path, path)
    with open(path, "r+b") as fh:
        fh.truncate(smollm_path.stat().st_size - 1)
    _expect_error(path, "truncated GGUF file", "98,362,431")


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    edits=st.lists(st.tuples(st.integers(0, 5_000), st.integers(0, 255)), max_size=6),
    cut=st.one_of(st.none(), st.integers(0, 5_000)),
)
def test_corrupted_bytes_never_escape_as_raw_exceptions(synthetic_gguf, tmp_path, edits, cut):
    """Flip bytes and cut anywhere in the header (the first ~4.6 kB): a clean error or a result."""
    data = bytearray(synthetic_gguf.read_bytes())
    for position, value in edits:
        data[position] = value
    if cut is not None:
        data = data[:cut]
    path = _write(tmp_path, bytes(data), "fuzzed.gguf")
    try:
        info = inspect_gguf(path)
    except ModelFileError as exc:
        assert "\n" not in exc.message
    else:
        json.dumps(info.to_dict())


# --- valid files -----------------------------------------------------------------------------


def test_synthetic_file_written_by_gguf_package(synthetic_gguf):
    check_gguf_file(synthetic_gguf)
    info = inspect_gguf(synthetic_gguf)
    assert info.architecture == "qwen2"
    assert info.name == "Synthetic Qwen2.5 Test"
    assert info.parameters == 1_234_567_890  # general.parameter_count wins over tensor sums
    assert info.parameters_human == "1.2B"
    assert info.context_length == 4096
    assert info.embedding_length == 16
    assert info.block_count == 2
    assert info.vocab_size == 300
    assert info.tokenizer_model == "gpt2"
    assert info.special_tokens["bos"] == {"id": 7, "text": "tok7"}
    assert info.special_tokens["eos"] == {"id": 299, "text": "tok299"}
    assert info.chat_template_family == "chatml"
    assert info.quantization_types == {"F32": 2, "F16": 1}
    assert info.quantization == "F32"  # no general.file_type: the commonest tensor type
    assert info.tensor_count == 3


def test_parser_agrees_with_gguf_reader(synthetic_gguf):
    """Our streaming parser and the gguf package's reader see the same header."""
    reader = GGUFReader(str(synthetic_gguf))
    info = inspect_gguf(synthetic_gguf)
    assert info.tensor_data_offset == reader.data_offset
    assert info.tensor_count == len(reader.tensors)
    assert info.metadata_count == len(reader.fields) - 3  # the reader adds GGUF.* pseudo-fields
    assert info.vocab_size == len(reader.fields["tokenizer.ggml.tokens"].data)
    counts = {}
    for tensor in reader.tensors:
        counts[tensor.tensor_type.name] = counts.get(tensor.tensor_type.name, 0) + 1
    assert info.quantization_types == counts
    del reader


def test_parameters_fall_back_to_tensor_element_counts(tmp_path):
    tensors = [("a", [8], 0, 0), ("b", [4, 8], 0, 32)]
    path = _write(tmp_path, _raw_gguf([ARCH_KV], tensors, b"\0" * (32 + 128)))
    info = inspect_gguf(path)
    assert info.parameters == 8 + 32
    assert info.parameters_human == "40"


@pytest.mark.parametrize(
    ("n", "text"),
    [(999, "999"), (40_000, "40K"), (134_515_008, "135M"), (268_098_176, "268M")]
    + [(1_543_714_304, "1.5B"), (3_000_000_000, "3B"), (8_030_261_248, "8B")],
)
def test_human_count(n, text):
    assert human_count(n) == text


def test_smollm_facts(smollm_path):
    check_gguf_file(smollm_path)
    info = inspect_gguf(smollm_path)
    assert info.file_size == 98_362_432
    assert info.gguf_version == 3
    assert info.architecture == "llama"
    assert info.size_label == "135M"
    assert info.parameters == 134_515_008
    assert info.parameters_human == "135M"
    assert info.quantization == "Q4_1"
    assert info.quantization_types == {"Q4_1": 210, "F32": 61, "Q8_0": 1}
    assert info.context_length == 8192
    assert info.embedding_length == 576
    assert info.block_count == 30
    assert info.vocab_size == 49152
    assert info.tokenizer_model == "gpt2"
    assert info.chat_template and "<|im_start|>" in info.chat_template
    assert info.chat_template_family == "chatml"
    assert info.special_tokens["bos"] == {"id": 1, "text": "<|im_start|>"}
    assert info.special_tokens["eos"] == {"id": 2, "text": "<|im_end|>"}
    assert info.special_tokens["unk"] == {"id": 0, "text": "<|endoftext|>"}
    assert info.special_tokens["pad"]["id"] == 2
    assert info.bos_token == "<|im_start|>"
    assert info.eos_token == "<|im_end|>"
    assert info.tensor_count == 272
    assert info.tensor_data_offset == 1_785_664


def test_gemma_facts(gemma_path):
    check_gguf_file(gemma_path)
    info = inspect_gguf(gemma_path)
    assert info.file_size == 253_113_024
    assert info.architecture == "gemma3"
    assert info.name == "Gemma 3 270m"
    assert info.size_label == "270M"
    assert info.parameters == 268_098_176
    assert info.parameters_human == "268M"
    assert info.quantization == "Q4_K_M"
    assert info.quantization_types["Q4_K"] == 27
    assert set(info.quantization_types) == {"F32", "Q5_0", "Q4_K", "Q8_0", "Q6_K"}
    assert info.context_length == 32768
    assert info.embedding_length == 640
    assert info.block_count == 18
    assert info.vocab_size == 262_144
    assert info.tokenizer_model == "llama"
    assert info.chat_template is None  # this GGUF carries no template: the family comes from arch
    assert info.has_chat_template is False
    assert info.chat_template_family == "gemma"
    assert info.special_tokens["bos"] == {"id": 2, "text": "<bos>"}
    assert info.special_tokens["eos"] == {"id": 1, "text": "<eos>"}
    assert info.special_tokens["pad"] == {"id": 0, "text": "<pad>"}
    assert info.special_tokens["unk"] == {"id": 3, "text": "<unk>"}
    assert info.add_bos_token is True
    assert info.tensor_count == 236


def test_inspection_is_fast_and_json_safe(tiny_model_path):
    """Header only: gguf.GGUFReader takes ~24 s on the 262k-token Gemma here; we need < 3 s."""
    start = time.perf_counter()
    info = inspect_gguf(tiny_model_path)
    assert time.perf_counter() - start < 3.0
    data = json.loads(json.dumps(info.to_dict()))
    for key in ("architecture", "parameters", "quantization", "context_length"):
        assert data[key] == getattr(info, key)
    assert data["vocab_size"] in (49152, 262_144)
    assert data["chat_template_family"] in ("chatml", "gemma")
    assert data["has_chat_template"] is info.has_chat_template


def test_errors_are_edgeagent_errors_with_hint(tmp_path):
    with pytest.raises(EdgeAgentError) as caught:
        inspect_gguf(_write(tmp_path, b"PK\x03\x04zipzip", "archive.gguf"))
    assert "zip archive" in str(caught.value)
    assert caught.value.to_dict()["hint"]


# --- chat families -------------------------------------------------------------------------

TEMPLATE_SNIPPETS = {
    "chatml": "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}",
    "qwen3": "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}<|im_start|>assistant",
    "gemma": "{{ bos_token }}{% for message in messages %}{{ '<start_of_turn>' + role + '\\n' "
    "+ message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}",
    "llama3": "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    "+ message['content'] | trim + '<|eot_id|>' }}",
    "llama2": "{{ bos_token + '[INST] ' + '<<SYS>>\\n' + system + '\\n<</SYS>>\\n\\n' "
    "+ content + ' [/INST]' }}",
    "mistral": "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% endif %}{% endfor %}",
    "phi3": "{% for message in messages %}{{'<|' + message['role'] + '|>' + '\\n' + "
    "message['content'] + '<|end|>\\n'}}{% endfor %}",
    "zephyr": "{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ '<|user|>\\n' + message['content'] + eos_token }}{% endif %}{% endfor %}",
}


@pytest.mark.parametrize("family", sorted(TEMPLATE_SNIPPETS))
def test_detect_family_from_template(family):
    assert detect_chat_family(TEMPLATE_SNIPPETS[family]) == family
    # The template wins over a misleading architecture and name.
    assert detect_chat_family(TEMPLATE_SNIPPETS[family], "gemma3", "Gemma 3") == family


@pytest.mark.parametrize(
    ("architecture", "name", "family"),
    [
        ("llama", "SmolLM2 135M Instruct", "chatml"),
        ("llama", "Llama 3.2 1B Instruct", "llama3"),
        ("llama", "Meta-Llama-3.1-8B-Instruct", "llama3"),
        ("llama", "Llama-2-7b-chat", "llama2"),
        ("llama", "Mistral 7B Instruct v0.3", "mistral"),
        ("qwen2", "Hammer2.1 1.5b", "chatml"),
        ("qwen2", "xLAM-2-1b-fc-r", "chatml"),
        ("qwen2", None, "chatml"),
        ("qwen3", "Qwen3 1.7B", "qwen3"),
        ("qwen3", None, "qwen3"),
        ("gemma3", "Gemma 3 270m", "gemma"),
        ("gemma2", None, "gemma"),
        ("phi3", "Phi 4 Mini Instruct", "phi3"),
        ("llama", "Zephyr 7B Beta", "zephyr"),
        ("llama", "TinyLlama 1.1B Chat v1.0", "zephyr"),
        ("llama", "Some Base Model", "unknown"),
        (None, None, "unknown"),
    ],
)
def test_detect_family_fallbacks(architecture, name, family):
    assert detect_chat_family(None, architecture, name) == family
    assert detect_chat_family("{{ messages[0]['content'] }}", architecture, name) == family


def test_every_family_is_declared_and_has_stops():
    assert set(FALLBACK_TEMPLATES) == set(CHAT_FAMILIES) - {"unknown"}
    for family in FALLBACK_TEMPLATES:
        assert family_stop_strings(family), family
    assert family_stop_strings("chatml") == ["<|im_end|>"]
    assert family_stop_strings("gemma") == ["<end_of_turn>"]
    assert family_stop_strings("unknown") == []
    stops = family_stop_strings("llama3")
    stops.append("mutated")
    assert "mutated" not in family_stop_strings("llama3")


CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hello there"},
    {"role": "assistant", "content": "Hi, how can I help?"},
    {"role": "user", "content": "What is 2+2?"},
]
TOKENS = {
    "chatml": ("", "<|im_end|>"),
    "qwen3": ("", "<|im_end|>"),
    "gemma": ("<bos>", "<eos>"),
    "llama3": ("<|begin_of_text|>", "<|eot_id|>"),
    "llama2": ("<s>", "</s>"),
    "mistral": ("<s>", "</s>"),
    "phi3": ("<s>", "<|endoftext|>"),
    "zephyr": ("<s>", "</s>"),
}
EXPECTED = {
    "chatml": (
        "<|im_start|>system\nYou are terse.<|im_end|>\n"
        "<|im_start|>user\nHello there<|im_end|>\n"
        "<|im_start|>assistant\nHi, how can I help?<|im_end|>\n"
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
        "<|im_start|>assistant\n"
    ),
    "gemma": (
        "<bos><start_of_turn>user\nYou are terse.\n\nHello there<end_of_turn>\n"
        "<start_of_turn>model\nHi, how can I help?<end_of_turn>\n"
        "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n"
        "<start_of_turn>model\n"
    ),
    "llama3": (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHello there<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHi, how can I help?<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    ),
    "llama2": (
        "<s>[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHello there [/INST]"
        " Hi, how can I help? </s><s>[INST] What is 2+2? [/INST]"
    ),
    "mistral": (
        "<s>[INST] You are terse.\n\nHello there [/INST] Hi, how can I help?</s>"
        "[INST] What is 2+2? [/INST]"
    ),
    "phi3": (
        "<|system|>\nYou are terse.<|end|>\n<|user|>\nHello there<|end|>\n"
        "<|assistant|>\nHi, how can I help?<|end|>\n<|user|>\nWhat is 2+2?<|end|>\n"
        "<|assistant|>\n"
    ),
    "zephyr": (
        "<|system|>\nYou are terse.</s>\n<|user|>\nHello there</s>\n"
        "<|assistant|>\nHi, how can I help?</s>\n<|user|>\nWhat is 2+2?</s>\n<|assistant|>\n"
    ),
}
EXPECTED["qwen3"] = EXPECTED["chatml"]


def _render(family: str, messages, trim: bool = True, **extra) -> str:
    env = ImmutableSandboxedEnvironment(trim_blocks=trim, lstrip_blocks=trim)
    bos, eos = TOKENS[family]
    template = env.from_string(FALLBACK_TEMPLATES[family])
    return template.render(
        messages=messages, add_generation_prompt=True, bos_token=bos, eos_token=eos, **extra
    )


@pytest.mark.parametrize("family", sorted(FALLBACK_TEMPLATES))
def test_fallback_template_renders_a_conversation(family):
    rendered = _render(family, CONVERSATION)
    assert rendered == EXPECTED[family]
    # Same output whatever the environment's whitespace settings.
    assert _render(family, CONVERSATION, trim=False) == rendered
    # The detector recognises its own family's fallback (llama2 and mistral share markup).
    assert detect_chat_family(FALLBACK_TEMPLATES[family]) == family
    # Each assistant turn ends with one of the family's stop strings.
    reply = "Hi, how can I help?"
    after = rendered[rendered.index(reply) + len(reply) :].lstrip()
    assert any(after.startswith(stop) for stop in family_stop_strings(family)), after[:30]


@pytest.mark.parametrize("family", sorted(FALLBACK_TEMPLATES))
def test_fallback_template_accepts_tool_results_and_missing_content(family):
    messages = [
        {"role": "user", "content": "weather in Oslo?"},
        {"role": "assistant", "content": None},
        {"role": "tool", "content": '{"temp_c": 4}'},
    ]
    rendered = _render(family, messages)
    assert '{"temp_c": 4}' in rendered
    assert "None" not in rendered


def test_qwen3_fallback_can_turn_thinking_off():
    rendered = _render("qwen3", CONVERSATION[:2], enable_thinking=False)
    assert rendered.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert "<think>" not in _render("qwen3", CONVERSATION[:2])


def test_fallback_without_generation_prompt_ends_after_last_turn():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    rendered = env.from_string(FALLBACK_TEMPLATES["gemma"]).render(
        messages=CONVERSATION[:3], add_generation_prompt=False, bos_token="<bos>"
    )
    assert rendered.endswith("Hi, how can I help?<end_of_turn>\n")
