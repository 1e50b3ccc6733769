"""Training records -> the exact token sequences the runtime decodes from, with the loss mask.

The runtime's prompt for a request is: its system prompt (``agent.prompt.system_prompt`` over
the tools, with the tools' worked examples when they have them), the conversation (a call as
``prompt.calls_text``, a result as a ``<tool_result>`` block), rendered with the model's own chat
template (``LocalModel.render``, special-token texts in data neutralised) and tokenized by the
model's own vocabulary (llama.cpp, vocabulary only). Each assistant turn of a record becomes one
example: the rendered prompt up to it (no loss) and its text up to the end-of-turn token (loss).

An assistant turn marked ``"learn": "decision"`` teaches only that no tool is called here: its
words are not learned (a canned reply would become the model's answer to everything); training
lowers the probability of starting a call at its first token instead (``Example.decision``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgeagent.agent.prompt import calls_text, system_prompt, tool_result_message
from edgeagent.errors import DatasetError


@dataclass(frozen=True)
class Example:
    """One training sequence: token ids, and how many leading tokens carry no loss."""

    tokens: tuple[int, ...]
    prompt_len: int
    record: int  # index of its record in the dataset
    group: str = ""  # examples with the same system prompt share its tokens (one KV in training)
    decision: bool = False  # only "do not start a call" is learned, at the first answer token

    @property
    def target_len(self) -> int:
        return len(self.tokens) - self.prompt_len


@dataclass(frozen=True)
class _ToolSpec:
    name: str
    description: str
    parameters: dict
    examples: tuple = ()


def tools_for(record: dict, known: dict[str, object]) -> list:
    """The tools of a record as the runtime would show them: a registry tool with the same name
    and parameters is used as is (its worked examples included); others from their spec."""
    out = []
    for entry in record.get("tools", []):
        function = entry["function"]
        name = function["name"]
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        tool = known.get(name)
        if tool is not None and getattr(tool, "parameters", None) == parameters:
            out.append(tool)
        else:
            out.append(_ToolSpec(name, function.get("description") or "", parameters))
    return out


def runtime_turns(messages: Sequence[dict]) -> list[dict]:
    """OpenAI-format turns as the runtime's history holds them (calls and results as text)."""
    names: dict[str, str] = {}
    out = []
    for message in messages:
        role = message["role"]
        if role == "assistant" and message.get("tool_calls"):
            pairs = []
            for call in message["tool_calls"]:
                function = call["function"]
                arguments = function.get("arguments", "{}")
                parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
                pairs.append((function["name"], parsed))
                names[str(call.get("id"))] = function["name"]
            out.append({"role": "assistant", "content": calls_text(pairs)})
        elif role == "tool":
            call_id = str(message.get("tool_call_id") or "")
            name = message.get("name") or names.get(call_id, "tool")
            body = tool_result_message(name, call_id or "call", message.get("content") or "", True)
            out.append({"role": "tool", "content": body})
        elif role != "system":
            out.append({"role": role, "content": message.get("content") or ""})
    return out


class TrainingRenderer:
    """Renders and tokenizes records with a model's own template and vocabulary (no weights)."""

    def __init__(self, model_path: str | Path, settings, registry=None) -> None:
        from edgeagent.runtime.local import LocalModel

        self.settings = settings
        self.model = LocalModel(model_path, settings, vocab_only=True)
        self.known = {t.name: t for t in registry} if registry is not None else {}

    def system_text(self, record: dict) -> str:
        extra = "\n".join(
            (m.get("content") or "").strip() for m in record["messages"] if m["role"] == "system"
        )
        tools = tools_for(record, self.known)
        return system_prompt(
            tools, extra or None, self.settings.tool_rendering, self.settings.exemplars
        )

    def texts(self, record: dict) -> list[tuple[str, str, bool]]:
        """(prompt text, target text, decision only) for each assistant turn of a record."""
        decisions = [
            m.get("learn") == "decision" for m in record["messages"] if m["role"] == "assistant"
        ]
        turns = runtime_turns(record["messages"])
        system = {"role": "system", "content": self.system_text(record)}
        out = []
        self.last_system = system["content"]
        for i, turn in enumerate(turns):
            if turn["role"] != "assistant":
                continue
            before = [system, *turns[:i]]
            prompt = self.model.render(before, add_generation_prompt=True)
            full = self.model.render([*before, turn], add_generation_prompt=False)
            if not full.startswith(prompt):
                raise DatasetError(
                    "the chat template renders an assistant turn in a way that does not extend "
                    "the prompt; this model's template cannot be used for training",
                    "choose a model with a standard chat template",
                )
            out.append((prompt, full[len(prompt) :], decisions[len(out)]))
        return out

    def examples(
        self, records: Iterable[dict], max_tokens: int = 4096
    ) -> tuple[list[Example], int]:
        """Token sequences for every assistant turn; also how many were too long and left out."""
        out: list[Example] = []
        too_long = 0
        for index, record in enumerate(records):
            for prompt, target, decision in self.texts(record):
                prompt_ids = self.model.tokenize(prompt)
                full_ids = self.model.tokenize(prompt + target)
                common = 0
                for a, b in zip(prompt_ids, full_ids, strict=False):
                    if a != b:
                        break
                    common += 1
                end = len(full_ids)
                for position in range(common, len(full_ids)):
                    if self.model.is_end_of_generation(full_ids[position]):
                        end = position + 1  # the end-of-turn token is learned; nothing after it
                        break
                if end - common < 1:
                    continue
                if end > max_tokens:
                    too_long += 1
                    continue
                group = hashlib.sha256(self.last_system.encode()).hexdigest()[:12]
                if decision:
                    end = common + 1  # one token, for the shape; its value is not learned
                out.append(Example(tuple(full_ids[:end]), common, index, group, decision))
        return out, too_long

    def call_start_tokens(self) -> list[int]:
        """Tokens whose text starts a call (``{`` or ``[``): what a decision example avoids."""
        return self.model.tokens_starting((b"{", b"["), after_space=True)

    def close(self) -> None:
        self.model.close()
