"""Chat template rendering: the GGUF's own template, and the family fallback when it breaks."""

from __future__ import annotations

import pytest

from edgeagent.errors import RuntimeLoadError
from edgeagent.runtime.chat_template import ChatTemplate, template_for_model

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_renders_the_gguf_template():
    tpl = template_for_model(CHATML, architecture="llama", name="x", bos_token="", eos_token="")
    assert tpl.from_gguf and tpl.family == "chatml"
    text = tpl.render([{"role": "user", "content": "hi"}])
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_broken_template_falls_back_to_family():
    broken = "<|im_start|>{% for m in messages %}{{ m.content }"
    tpl = template_for_model(broken, architecture="llama", name="x", bos_token="", eos_token="")
    assert not tpl.from_gguf
    assert "<|im_start|>assistant" in tpl.render([{"role": "user", "content": "hi"}])


def test_missing_template_uses_architecture_family():
    tpl = template_for_model(
        None, architecture="gemma3", name="g", bos_token="<bos>", eos_token="<eos>"
    )
    assert tpl.family == "gemma"
    assert "<start_of_turn>model\n" in tpl.render([{"role": "user", "content": "hi"}])


def test_raise_exception_in_template_is_typed():
    tpl = ChatTemplate("{{ raise_exception('roles must alternate') }}", "chatml")
    with pytest.raises(RuntimeLoadError, match="roles must alternate"):
        tpl.render([{"role": "user", "content": "hi"}])


def test_message_objects_are_accepted():
    class Msg:
        role = "user"
        content = "hello"

    tpl = ChatTemplate(CHATML, "chatml")
    assert "hello" in tpl.render([Msg()])
