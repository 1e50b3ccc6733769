"""Chat template families: recognise one from a template or model name, and fall back per family.

A family names the turn markup a model was trained on (ChatML, Gemma turns, Llama 3 headers,
...). ``detect_chat_family`` reads it from a GGUF's template, else from its architecture or
name; ``FALLBACK_TEMPLATES`` gives a HF-style Jinja template per family for GGUFs that carry
none; ``family_stop_strings`` gives the text that ends an assistant turn.
"""

from __future__ import annotations

import re

__all__ = [
    "CHAT_FAMILIES",
    "FALLBACK_TEMPLATES",
    "detect_chat_family",
    "family_stop_strings",
]

CHAT_FAMILIES = (
    "chatml",
    "qwen3",
    "gemma",
    "llama3",
    "llama2",
    "mistral",
    "phi3",
    "zephyr",
    "unknown",
)

# Architectures (general.architecture) whose family is unambiguous.
_ARCH_FAMILIES = {
    "gemma": "gemma",
    "gemma2": "gemma",
    "gemma3": "gemma",
    "gemma3n": "gemma",
    "qwen2": "chatml",
    "qwen2moe": "chatml",
    "qwen3": "qwen3",
    "qwen3moe": "qwen3",
    "phi3": "phi3",
    "phimoe": "phi3",
}

# Patterns over the lower-cased model name, most specific first.
_NAME_FAMILIES: tuple[tuple[str, str], ...] = (
    (r"qwen[-_ ]?3", "qwen3"),
    (r"qwen|smollm|hermes|hammer|xlam|dolphin", "chatml"),
    (r"gemma", "gemma"),
    (r"llama[-_ ]?3", "llama3"),
    (r"llama[-_ ]?2", "llama2"),
    (r"mistral|mixtral", "mistral"),
    (r"phi[-_ ]?[34]", "phi3"),
    (r"zephyr|tinyllama", "zephyr"),
)


def detect_chat_family(
    template: str | None, architecture: str | None = None, name: str | None = None
) -> str:
    """The chat family of a model: from template markers, else its name, else its architecture.

    Returns one of ``CHAT_FAMILIES``; ``"unknown"`` when nothing matches.
    """
    if template:
        family = _family_from_template(template)
        if family != "unknown":
            return family
    if name:
        lowered = name.lower()
        for pattern, family in _NAME_FAMILIES:
            if re.search(pattern, lowered):
                return family
    if architecture:
        return _ARCH_FAMILIES.get(architecture.lower(), "unknown")
    return "unknown"


def _family_from_template(template: str) -> str:
    """The family whose turn markers appear in a Jinja chat template."""
    if "<|im_start|>" in template:
        return "qwen3" if "<think>" in template else "chatml"
    if "<start_of_turn>" in template:
        return "gemma"
    if "<|start_header_id|>" in template:
        return "llama3"
    if "[INST]" in template:
        return "llama2" if "<<SYS>>" in template else "mistral"
    if "<|end|>" in template and ("<|user|>" in template or "<|assistant|>" in template):
        return "phi3"
    if "<|end|>" in template and "'<|' +" in template:  # Phi builds '<|' + role + '|>'
        return "phi3"
    if "<|user|>" in template or "<|assistant|>" in template:
        return "zephyr"
    return "unknown"


# HF-style templates: they iterate ``messages`` (role, content), honour ``add_generation_prompt``
# and use ``bos_token``. Newlines live inside string literals so the output does not depend on
# the environment's trim_blocks/lstrip_blocks settings. Families without a system role fold the
# system message into the first user turn; tool results are sent as the family's user-side turn.
_CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + (message['content'] or '') + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_QWEN3 = (
    "{% for message in messages %}"
    "{% if message['role'] == 'tool' %}"
    "{{ '<|im_start|>user\\n<tool_response>\\n' + (message['content'] or '')"
    " + '\\n</tool_response><|im_end|>\\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + (message['content'] or '') + '<|im_end|>\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{% if enable_thinking is defined and enable_thinking is false %}"
    "{{ '<think>\\n\\n</think>\\n\\n' }}{% endif %}"
    "{% endif %}"
)

_GEMMA = (
    "{{ bos_token }}"
    "{% set ns = namespace(system='') %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}"
    "{% set ns.system = ns.system + (message['content'] or '') + '\\n\\n' %}"
    "{% else %}"
    "{% set role = 'model' if message['role'] == 'assistant' else 'user' %}"
    "{{ '<start_of_turn>' + role + '\\n' + (ns.system if role == 'user' else '')"
    " + (message['content'] or '') | trim + '<end_of_turn>\\n' }}"
    "{% if role == 'user' %}{% set ns.system = '' %}{% endif %}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)

_LLAMA3 = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% set role = 'ipython' if message['role'] == 'tool' else message['role'] %}"
    "{{ '<|start_header_id|>' + role + '<|end_header_id|>\\n\\n'"
    " + (message['content'] or '') | trim + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)

_LLAMA2 = (
    "{% set ns = namespace(system='') %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}"
    "{% set ns.system = '<<SYS>>\\n' + (message['content'] or '') + '\\n<</SYS>>\\n\\n' %}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ ' ' + (message['content'] or '') | trim + ' ' + (eos_token or '</s>') }}"
    "{% else %}"
    "{{ bos_token + '[INST] ' + ns.system + (message['content'] or '') | trim + ' [/INST]' }}"
    "{% set ns.system = '' %}"
    "{% endif %}"
    "{% endfor %}"
)

_MISTRAL = (
    "{{ bos_token }}"
    "{% set ns = namespace(system='') %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}"
    "{% set ns.system = (message['content'] or '') + '\\n\\n' %}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ ' ' + (message['content'] or '') | trim + (eos_token or '</s>') }}"
    "{% else %}"
    "{{ '[INST] ' + ns.system + (message['content'] or '') | trim + ' [/INST]' }}"
    "{% set ns.system = '' %}"
    "{% endif %}"
    "{% endfor %}"
)

_PHI3 = (
    "{% for message in messages %}"
    "{% set role = 'user' if message['role'] == 'tool' else message['role'] %}"
    "{{ '<|' + role + '|>\\n' + (message['content'] or '') + '<|end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)

_ZEPHYR = (
    "{% for message in messages %}"
    "{% set role = 'user' if message['role'] == 'tool' else message['role'] %}"
    "{{ '<|' + role + '|>\\n' + (message['content'] or '') + (eos_token or '</s>') + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)

FALLBACK_TEMPLATES: dict[str, str] = {
    "chatml": _CHATML,
    "qwen3": _QWEN3,
    "gemma": _GEMMA,
    "llama3": _LLAMA3,
    "llama2": _LLAMA2,
    "mistral": _MISTRAL,
    "phi3": _PHI3,
    "zephyr": _ZEPHYR,
}

_STOP_STRINGS: dict[str, tuple[str, ...]] = {
    "chatml": ("<|im_end|>",),
    "qwen3": ("<|im_end|>",),
    "gemma": ("<end_of_turn>",),
    "llama3": ("<|eot_id|>", "<|eom_id|>"),
    "llama2": ("</s>",),
    "mistral": ("</s>",),
    "phi3": ("<|end|>", "<|endoftext|>"),
    "zephyr": ("</s>",),
}


def family_stop_strings(family: str) -> list[str]:
    """Text that ends an assistant turn in ``family``; empty for an unknown family."""
    return list(_STOP_STRINGS.get(family, ()))
