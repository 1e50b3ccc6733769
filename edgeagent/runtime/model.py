"""The model interface the agent decodes through, and the data a decode returns.

``LocalModel`` (llama.cpp) implements ``Model``; so does ``edgeagent.testing.FakeModel`` (scripted
generations, for unit tests of the loop). Nothing outside ``edgeagent/runtime/`` needs to know
which one it has: the agent renders messages, asks for a grammar engine, makes a constraint from
GBNF text and generates under it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from edgeagent.runtime.chat_template import ChatTemplate


@dataclass(frozen=True)
class EngineInfo:
    """Which engine produced a constraint, for the UI and the store."""

    name: str
    reason: str = ""


class TokenConstraint(Protocol):
    """What the decode loop needs from a grammar engine (see ``edgeagent.runtime.engines``)."""

    def forced_tokens(self) -> list[int]:
        """Tokens the grammar forces next; they are evaluated in one batch, not sampled."""

    def allowed(self) -> np.ndarray | None:
        """Boolean mask over the vocabulary of tokens allowed next (None: no constraint)."""

    def consume(self, token: int) -> None:
        """Advance the grammar by one token."""

    def is_finished(self) -> bool:
        """True when the grammar admits nothing more (the output is complete)."""


@dataclass(frozen=True)
class TokenChoice:
    """One output token: its log-probability, and the margin over the runner-up when sampled."""

    token: int
    text: str
    logprob: float
    margin: float
    forced: bool


@dataclass
class Generation:
    """The outcome of one bounded decode, with its timings."""

    text: str
    finish_reason: str  # "stop" | "length" | "timeout" | "grammar" | "repetition"
    prompt_tokens: int
    cached_prompt_tokens: int
    output_tokens: int
    ttft_s: float
    total_s: float
    choices: list[TokenChoice] = field(default_factory=list)
    threads: int = 0  # llama.cpp threads this decode used

    @property
    def tokens_per_s(self) -> float:
        """Output tokens per second after the first token."""
        decode_s = self.total_s - self.ttft_s
        if self.output_tokens <= 1 or decode_s <= 0:
            return 0.0
        return (self.output_tokens - 1) / decode_s

    @property
    def sampled(self) -> list[TokenChoice]:
        """The tokens the model chose freely (not forced by a grammar)."""
        return [c for c in self.choices if not c.forced]


class GrammarEngine(Protocol):
    """Turns GBNF text into a fresh TokenConstraint for one decode."""

    info: EngineInfo

    def constrain(self, gbnf: str) -> tuple[TokenConstraint | None, EngineInfo]:
        """A constraint at the grammar's start and the engine that made it (after a fallback,
        the fallback's name and the reason); GrammarError if no engine accepts the grammar."""


@runtime_checkable
class Model(Protocol):
    """What the agent needs from a model: render, constrain, generate, close.

    ``path`` names the model (its file for a GGUF); ``fingerprint`` identifies the weights (and
    adapter) for caches; ``template`` gives the end/begin markers an answer must not leak.
    """

    path: Path
    n_ctx: int
    template: ChatTemplate

    @property
    def fingerprint(self) -> str:
        """Changes whenever the weights (or the adapter on them) change."""

    def render(self, messages: Sequence, *, add_generation_prompt: bool = True, tools=None) -> str:
        """The prompt text for ``messages`` in the model's chat template."""

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` as the model reads it."""

    def generate(
        self,
        prompt: str | list[int],
        *,
        max_tokens: int | None = None,
        timeout_s: float | None = None,
        temperature: float | None = None,
        constraint: TokenConstraint | None = None,
        on_text: Callable[[str], None] | None = None,
        seed: int | None = None,
        repeat_penalty: float = 1.0,
        first_bias: dict[int, float] | None = None,
    ) -> Generation:
        """One bounded decode (tokens and wall clock), optionally under ``constraint``."""

    def grammar_engine(self, prefer: str = "llguidance") -> GrammarEngine:
        """The engine that makes constraints over this model's vocabulary."""

    def call_start_tokens(self) -> list[int]:
        """Tokens that start a JSON call (``{``): the call prior's target."""

    def warm_prefix(self, system: str):
        """Make the KV state of the prompt prefix ``system`` ready (memory, disk or computed);
        returns ``runtime.prefix_cache.WarmResult``."""

    def close(self) -> None:
        """Free what the model holds."""
