"""Test helpers: a scripted model for unit tests of the agent loop and of your own tools.

``FakeModel`` implements ``edgeagent.runtime.model.Model`` without any GGUF: each ``generate``
returns the next scripted output, split into word-sized tokens with the log-probabilities you
give (so confidence, and with it routing, is scripted too), bounded by ``max_tokens`` like the
real decode. It records every request it was given (prompt, whether a grammar constrained it,
the grammar text, the call prior), so a test can check what the model was shown.

    from edgeagent.testing import FakeModel, call
    model = FakeModel([call("get_weather", city="Oslo"), "It is 12 C in Oslo."])
    agent = make_agent(settings, model=model, tools=[get_weather], store=False)

What the fake checks of the grammar: only the envelope's branch. A plain answer where the
grammar allows only calls (``root ::= call``), or a call where it allows only an answer, raises
``ImpossibleScript``: a real model could not produce it. Inside a call it checks nothing (a
scripted malformed call is how the parse-error and repair paths are tested). The real path is
covered by the integration tests on real GGUF models.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from edgeagent.errors import EdgeAgentError
from edgeagent.runtime.chat_template import ChatTemplate, template_for_model
from edgeagent.runtime.model import EngineInfo, Generation, TokenChoice
from edgeagent.runtime.prefix_cache import WarmResult

_TOKEN = re.compile(r"\w+|\s+|[^\w\s]+", re.UNICODE)  # words, spaces, punctuation runs
SURE = -0.01  # log-probability of a token the model is sure of (p = 0.99)
UNSURE = -2.5  # log-probability of a token it is not (p = 0.08)


class ScriptExhausted(EdgeAgentError):
    """The loop asked a FakeModel for more generations than the test scripted."""


class ImpossibleScript(EdgeAgentError):
    """A scripted output the grammar of that decode could never produce (a real model can't)."""


@dataclass(frozen=True)
class Scripted:
    """One scripted generation: its text and how sure the model was of each token.

    ``logprob`` applies to every token; ``first_logprob`` (if given) to the first one, the
    call-or-answer decision. ``finish_reason`` defaults to ``grammar`` for a constrained call,
    ``stop`` otherwise; a text longer than the request's ``max_tokens`` ends at the bound with
    ``length``, as a real decode does.
    """

    text: str
    logprob: float = SURE
    first_logprob: float | None = None
    margin: float = 5.0
    finish_reason: str | None = None


def call(tool: str, /, _logprob: float = SURE, **arguments) -> Scripted:
    """A scripted tool call in the envelope's wire format."""
    return Scripted(_call_text(tool, arguments), logprob=_logprob)


def calls(*pairs: tuple[str, dict], logprob: float = SURE) -> Scripted:
    """Scripted parallel calls: ``calls(("a", {...}), ("b", {...}))``."""
    body = ",".join(_call_text(name, arguments) for name, arguments in pairs)
    return Scripted(f"[{body}]", logprob=logprob)


def _call_text(name: str, arguments: dict) -> str:
    payload = json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))
    return f'{{"name":{json.dumps(name)},"arguments":{payload}}}'


@dataclass
class FakeRequest:
    """What one ``generate`` was given."""

    prompt: str
    grammar: str | None
    max_tokens: int | None
    first_bias: dict[int, float] | None
    temperature: float | None


@dataclass
class _FakeConstraint:
    """Stands for a grammar constraint: carries the grammar text, constrains nothing."""

    grammar: str

    def forced_tokens(self) -> list[int]:
        return []

    def allowed(self):
        return None

    def consume(self, token: int) -> None:
        return None

    def is_finished(self) -> bool:
        return False


class _FakeEngine:
    """A grammar engine that records the grammar and returns a pass-through constraint."""

    def __init__(self, name: str) -> None:
        self.info = EngineInfo(name)

    def constrain(self, gbnf: str) -> tuple[_FakeConstraint, EngineInfo]:
        return _FakeConstraint(gbnf), self.info


@dataclass
class FakeModel:
    """A ``Model`` that replays scripted outputs (strings or ``Scripted``) in order.

    ``on_generate``, if given, is called with each ``FakeRequest`` before the output is
    returned (a test can raise from it, or block, to simulate a failing or slow decode).
    """

    outputs: Iterable[str | Scripted] = ()
    name: str = "fake-model.gguf"
    n_ctx: int = 8192
    engine_name: str = "fake"
    on_generate: Callable[[FakeRequest], None] | None = None
    requests: list[FakeRequest] = field(default_factory=list)
    warmed: list[str] = field(default_factory=list)
    closed: bool = False

    def __post_init__(self) -> None:
        self._queue = [o if isinstance(o, Scripted) else Scripted(o) for o in self.outputs]
        self.path = Path(self.name)
        self.template: ChatTemplate = template_for_model(
            None, architecture="llama", name="fake chatml", bos_token="", eos_token="<|im_end|>"
        )

    def queue(self, *outputs: str | Scripted) -> None:
        """Script more generations (after the ones already queued)."""
        self._queue.extend(o if isinstance(o, Scripted) else Scripted(o) for o in outputs)

    @property
    def remaining(self) -> int:
        """Scripted generations not used yet."""
        return len(self._queue)

    @property
    def fingerprint(self) -> str:
        return f"fake:{self.name}"

    def render(self, messages, *, add_generation_prompt: bool = True, tools=None) -> str:
        return self.template.render(
            list(messages), add_generation_prompt=add_generation_prompt, tools=tools
        )

    def tokenize(self, text: str) -> list[int]:
        return [len(piece) for piece in _TOKEN.findall(text)]

    def grammar_engine(self, prefer: str = "llguidance") -> _FakeEngine:
        return _FakeEngine(self.engine_name)

    def call_start_tokens(self) -> list[int]:
        return []

    def warm_prefix(self, system: str, cache_dir: Path) -> WarmResult:
        source = "memory" if system in self.warmed else "cold"
        self.warmed.append(system)
        return WarmResult(source, len(self.tokenize(system)), 0.0)

    def generate(
        self,
        prompt,
        *,
        max_tokens: int | None = None,
        timeout_s: float | None = None,
        temperature: float | None = None,
        constraint=None,
        on_text: Callable[[str], None] | None = None,
        seed: int | None = None,
        repeat_penalty: float = 1.0,
        first_bias: dict[int, float] | None = None,
    ) -> Generation:
        """The next scripted output as a Generation (ScriptExhausted if none is left)."""
        request = FakeRequest(
            prompt if isinstance(prompt, str) else "",
            getattr(constraint, "grammar", None),
            max_tokens,
            first_bias,
            temperature,
        )
        self.requests.append(request)
        if self.on_generate is not None:
            self.on_generate(request)
        if not self._queue:
            raise ScriptExhausted(
                f"FakeModel: generation {len(self.requests)} was not scripted",
                "queue another output, or check why the loop decoded again",
            )
        script = self._queue.pop(0)
        _check_branch(script.text, request.grammar)
        pieces = _TOKEN.findall(script.text)
        finish = script.finish_reason or ("grammar" if constraint is not None else "stop")
        if max_tokens is not None and len(pieces) > max_tokens:
            pieces, finish = pieces[:max_tokens], "length"
        choices = []
        for index, piece in enumerate(pieces):
            logprob = script.logprob
            if index == 0 and script.first_logprob is not None:
                logprob = script.first_logprob
            choices.append(TokenChoice(index, piece, logprob, script.margin, False))
            if on_text:
                on_text(piece)
        prompt_tokens = len(self.tokenize(request.prompt)) if request.prompt else len(prompt)
        return Generation(
            text="".join(pieces),
            finish_reason=finish,
            prompt_tokens=prompt_tokens,
            cached_prompt_tokens=0,
            output_tokens=len(choices),
            ttft_s=0.001,
            total_s=0.001 * max(1, len(choices)),
            choices=choices,
        )

    def close(self) -> None:
        self.closed = True


def _check_branch(text: str, grammar: str | None) -> None:
    """ImpossibleScript if ``text`` takes an envelope branch the grammar does not have."""
    if not grammar or not grammar.startswith("root ::= "):
        return
    branches = set(grammar.splitlines()[0].removeprefix("root ::= ").split(" | "))
    if not branches <= {"call", "calls", "answer"}:
        return  # not the tool-choice envelope
    is_call = text[:1] in ("{", "[")
    if is_call and not branches & {"call", "calls"}:
        raise ImpossibleScript(
            f"FakeModel: a call was scripted where the grammar allows only {sorted(branches)}",
            "script a plain answer for this decode",
        )
    if not is_call and "answer" not in branches:
        raise ImpossibleScript(
            f"FakeModel: an answer was scripted where the grammar requires a call: {text[:40]!r}",
            "script a call for this decode (the loop required one here)",
        )


__all__ = [
    "FakeModel",
    "FakeRequest",
    "ImpossibleScript",
    "ScriptExhausted",
    "Scripted",
    "call",
    "calls",
]
