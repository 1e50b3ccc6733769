"""Render a conversation with the model's own Jinja chat template (or a per-family fallback)."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from edgeagent.errors import RuntimeLoadError


def _raise_exception(message: str) -> None:
    raise RuntimeLoadError(f"the chat template refused the conversation: {message}")


def _strftime_now(fmt: str) -> str:
    return _dt.datetime.now().strftime(fmt)


@lru_cache(maxsize=16)
def _compile(template: str):
    """Compile a template once in a sandboxed Jinja environment, HF-compatible."""
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.filters["tojson"] = _tojson
    try:
        return env.from_string(template)
    except TemplateError as exc:
        raise RuntimeLoadError(
            f"the chat template does not compile: {exc}",
            "use a GGUF with a valid template, or set the chat family explicitly",
        ) from exc


def _tojson(value, indent=None, ensure_ascii=False, **_ignored) -> str:
    import json

    return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii)


@dataclass(frozen=True)
class ChatTemplate:
    """A chat template with the special-token texts it needs; ``family`` names its style."""

    source: str
    family: str
    bos_token: str = ""
    eos_token: str = ""
    from_gguf: bool = True

    def render(
        self,
        messages: Sequence[dict],
        *,
        add_generation_prompt: bool = True,
        tools: Sequence[dict] | None = None,
    ) -> str:
        """The prompt text for ``messages`` (dicts with ``role`` and ``content``)."""
        from jinja2 import TemplateError

        plain = [_plain_message(m) for m in messages]
        try:
            return _compile(self.source).render(
                messages=plain,
                add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
                tools=list(tools) if tools else None,
            )
        except TemplateError as exc:
            raise RuntimeLoadError(
                f"the {self.family} chat template failed to render: {exc}",
                "report the model; edgeagent can fall back to its family template",
            ) from exc


def _plain_message(message) -> dict:
    """Messages may be dicts or objects with role/content; templates want plain dicts."""
    if isinstance(message, dict):
        return {"role": message["role"], "content": message.get("content") or ""}
    return {"role": message.role, "content": message.content or ""}


def template_for_model(
    gguf_template: str | None,
    *,
    architecture: str | None,
    name: str | None,
    bos_token: str,
    eos_token: str,
) -> ChatTemplate:
    """The model's own template when it has one that renders, else the family fallback."""
    from edgeagent.runtime.chat_family import FALLBACK_TEMPLATES, detect_chat_family

    family = detect_chat_family(gguf_template, architecture, name)
    if gguf_template:
        candidate = ChatTemplate(gguf_template, family, bos_token, eos_token, from_gguf=True)
        try:
            candidate.render([{"role": "user", "content": "ping"}])
            return candidate
        except RuntimeLoadError:
            pass
    fallback = FALLBACK_TEMPLATES.get(family) or FALLBACK_TEMPLATES["chatml"]
    return ChatTemplate(
        fallback, family if family in FALLBACK_TEMPLATES else "chatml", bos_token, eos_token, False
    )
