"""Local proposals: prompt -> grammar-constrained decode -> parse -> validate -> repair -> score.

Every decode is bounded in tokens and wall-clock time, and free strings are capped by the
grammar, so a runaway value ends in one repair turn (still under the grammar), never at the
context limit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgeagent.agent.confidence import answer_confidence, call_confidences
from edgeagent.agent.prompt import repair_message, system_prompt
from edgeagent.agent.validate import Validation, validate_call
from edgeagent.config import Settings, load_settings
from edgeagent.errors import EnvelopeParseError
from edgeagent.grammar.envelope import MAX_CALLS
from edgeagent.types import ToolCall, Usage


@dataclass
class Proposal:
    """What one local decode proposed: an answer or validated calls, with the evidence."""

    answer: str | None
    calls: list[ToolCall]
    validations: list[Validation]
    confidence: float
    usage: Usage
    raw: str
    repaired: bool = False
    engine: str = ""
    finish_reason: str = ""
    error: str | None = None
    duplicates_dropped: int = 0
    written: list = field(default_factory=list)  # the kept calls as the model wrote them
    dropped_turns: int = 0  # leading conversation turns left out to fit the context

    @property
    def valid(self) -> bool:
        return self.error is None and all(v.valid for v in self.validations)


def _usage_of(generation) -> Usage:
    return Usage(
        prompt_tokens=generation.prompt_tokens,
        cached_prompt_tokens=generation.cached_prompt_tokens,
        output_tokens=generation.output_tokens,
        sampled_tokens=len(generation.sampled),
        ttft_s=generation.ttft_s,
        total_s=generation.total_s,
    )


def as_chat_dicts(messages: Sequence) -> list[dict]:
    """Messages (dicts or objects with role/content) as plain ``{role, content}`` dicts."""
    out = []
    for m in messages:
        if isinstance(m, dict):
            out.append({"role": m["role"], "content": m.get("content") or ""})
        else:
            out.append({"role": m.role, "content": m.content or ""})
    return out


class LocalProposer:
    """Local model + tools + grammar engine: turns a conversation into validated proposals."""

    def __init__(
        self,
        model,
        registry,
        settings: Settings,
        engine: str = "llguidance",
        system_extra: str | None = None,
    ) -> None:
        self.model = model
        self.registry = registry
        self.settings = settings
        self.engine = model.grammar_engine(engine) if len(registry) else None
        self.engine_name = self.engine.info.name if self.engine else "none"
        self.system = system_prompt(
            list(registry), system_extra, settings.tool_rendering, settings.exemplars
        )
        self.request_text = ""  # the user's last message, for the degenerate-value check
        self.matches: list = []  # the tools the last request matched (agent.retrieval)
        self.context = None  # the ToolContext of the current proposal (its allowed roots)
        self.view: list[str] | None = None  # the tools the grammar offered last (None: all)

    def warm_prefix(self):
        """Evaluate (or restore from disk) the system prompt's KV state; returns WarmResult."""
        return self.model.warm_prefix(self.system, self.settings.home / "kv-cache")

    def envelope(self, mode: str, max_calls: int = MAX_CALLS, view=None):
        """The tool-choice grammar over the registry, or over the tools in ``view`` only."""
        from edgeagent.grammar.envelope import build_envelope

        shown = set(view) if view else None
        tools = [
            (t.name, self._parameters(t)) for t in self.registry if shown is None or t.name in shown
        ]
        return build_envelope(
            tools,
            mode=mode,
            max_calls=max_calls if mode != "none" else 1,
            answer_cap=self.settings.answer_cap,
            string_cap=self.settings.string_cap,
        )

    def _first_mode(self, named: set[str]) -> str:
        """The first step's decision from the evidence before the model (agent.retrieval).

        Arithmetic goes to the tool that declares it takes arithmetic (a small model's mental
        arithmetic is wrong too often: "12 * 7 = 80"). A call is required when the user named a
        file or folder that is there and the best-matching tool takes it (answering without
        looking is never right), or when the request shares more than one word with a tool
        (``STRONG_MATCH``, fitted on the tune split); the model still chooses among the tools
        in view. Otherwise the model decides, with the call prior.
        """
        from edgeagent.agent.retrieval import ARITHMETIC_WORD, STRONG_MATCH

        best = self.matches[0]
        declared = self.registry.get(best.name).keywords
        if ARITHMETIC_WORD in best.shared and ARITHMETIC_WORD in declared:
            return best.name
        if named & set(best.shared) or best.score >= STRONG_MATCH:
            return "required"
        return "auto"

    def follow_up_evidence(self, exclude: Iterable[str]) -> bool:
        """Whether a tool of the last view that has not run is asked for in words strongly
        enough (``STRONG_MATCH`` without the named-path signal) to call it after a result.

        After a tool result a 135M model calls a sibling tool more often than it answers
        (file_info after read_file, current_time after system_status): on the tune split a
        follow-up call lost more tasks than it won unless the request itself asked for it.
        """
        from edgeagent.agent.retrieval import STRONG_MATCH

        if self.view is None:
            return True  # no retrieval: the model decides, as before
        done = set(exclude)
        return any(
            m.word_score >= STRONG_MATCH
            for m in self.matches
            if m.name in self.view and m.name not in done
        )

    def _named_kinds(self) -> set[str]:
        """Whether the request names an existing file or folder in the first allowed root."""
        roots = getattr(self.context, "allowed_roots", None) if self.context else None
        if not roots:
            return set()
        from edgeagent.agent.paths import named_kinds

        return named_kinds(self.request_text, Path(roots[0]))

    def _parameters(self, tool) -> dict:
        """A tool's schema for the grammar: must-exist paths offered as the paths that exist,
        arguments taken from the request offered as the request's word spans, required numbers
        as the numbers the request states."""
        import dataclasses

        roots = getattr(self.context, "allowed_roots", None) if self.context else None
        if self.settings.number_choices and self.request_text:
            from edgeagent.agent.spans import with_number_choices

            numbered = with_number_choices(tool.parameters, self.request_text)
            if numbered is not tool.parameters:
                tool = dataclasses.replace(tool, parameters=numbered)
        if self.settings.span_arguments and tool.request_spans and self.request_text:
            from edgeagent.agent.spans import with_request_spans

            tool = dataclasses.replace(tool, parameters=with_request_spans(tool, self.request_text))
        if not (self.settings.path_choices and roots):
            return tool.parameters
        from edgeagent.agent.paths import with_path_choices

        return with_path_choices(tool, Path(roots[0]), self.request_text)

    def _fit(self, turns: list[dict]) -> int:
        """How many leading turns to leave out so the prompt fits the context (0 if it fits).

        Whole exchanges go, oldest first, from one user turn to the next; the system prompt
        (the cached prefix) and the current request with everything after it always stay.
        """
        room = self.model.n_ctx - self.settings.max_tokens - 8

        def size(start: int) -> int:
            messages = [{"role": "system", "content": self.system}, *turns[start:]]
            text = self.model.render(messages)
            # a token covers at least one byte: a short prompt fits without tokenizing it
            # (the decode tokenizes it anyway; this check runs before every step)
            if len(text.encode("utf-8")) + 1 <= room:
                return len(text.encode("utf-8")) + 1
            return len(self.model.tokenize(text))

        if size(0) <= room:
            return 0
        users = [i for i, t in enumerate(turns) if t["role"] == "user"][1:]
        if not users:
            return 0
        low, high = 0, len(users) - 1  # the fewest exchanges to leave out (binary search)
        while low < high:
            middle = (low + high) // 2
            if size(users[middle]) <= room:
                high = middle
            else:
                low = middle + 1
        return users[low]  # if even this is too long, the decode says so; nothing is hidden

    def _bounds(self) -> dict:
        return {"max_tokens": self.settings.max_tokens, "timeout_s": self.settings.decode_timeout_s}

    def _decode(
        self,
        messages: list[dict],
        mode: str,
        on_text,
        max_calls: int = MAX_CALLS,
        view=None,
        call_prior: bool = True,
    ) -> tuple:
        prompt = self.model.render(messages)
        if self.engine is None or mode == "free":
            gen = self.model.generate(
                prompt,
                on_text=on_text,
                temperature=self.settings.temperature,
                repeat_penalty=1.15,
                **self._bounds(),
            )
            return gen, "none"
        constraint, info = self.engine.constrain(self.envelope(mode, max_calls, view).gbnf)
        bias = None
        if mode in ("auto", "required") and self.settings.call_bias and call_prior:
            # auto: the prior for calling at all; required: for one call (``{``) over a list
            # (``[``), which a base model writes as 2-4 near-identical calls when nothing
            # steers it (Gemma on BFCL: 10 of 40 items wrong by count)
            bias = dict.fromkeys(self.model.call_start_tokens(), self.settings.call_bias)
        gen = self.model.generate(
            prompt,
            constraint=constraint,
            on_text=on_text,
            temperature=self.settings.temperature,
            first_bias=bias,
            repeat_penalty=self.settings.call_repeat_penalty,
            **self._bounds(),
        )
        return gen, info.name

    def propose(
        self,
        conversation: Sequence,
        *,
        mode: str = "auto",
        context=None,
        on_text: Callable[[str], None] | None = None,
        allow_repair: bool = True,
        first_step: bool = True,
        exclude: Iterable[str] = (),
    ) -> Proposal:
        """Decode once under the envelope; validate; repair once if invalid; score confidence.

        ``exclude`` names tools that already ran in this request: they leave the view (a
        request whose matched tools all ran is answered in text).
        """
        turns = as_chat_dicts(conversation)
        dropped = self._fit(turns)
        messages = [{"role": "system", "content": self.system}, *turns[dropped:]]
        self.context = context
        self.request_text = next(
            (m["content"] for m in reversed(messages) if m["role"] == "user"), ""
        )
        if not len(self.registry):
            mode = "free"
        view = None
        if mode == "auto" and self.settings.tool_retrieval:
            from edgeagent.agent.retrieval import match_tools, tools_in_view

            named = self._named_kinds()
            self.matches = match_tools(self.request_text, list(self.registry), named)
            if self.settings.span_arguments:
                from edgeagent.agent.spans import lacks_named_path

                self.matches = [
                    m
                    for m in self.matches
                    if not lacks_named_path(self.registry.get(m.name), self.request_text)
                ]
            view = [name for name in tools_in_view(self.matches) if name not in set(exclude)]
            if not view:
                mode = "none"  # the request is about none of the tools: answer it in text
            elif first_step:
                mode = self._first_mode(named)
        self.view = view
        # the call prior helps the first decision only: after a tool result the model itself
        # says whether another call is needed (with the prior it calls a sibling tool instead)
        gen, engine = self._decode(messages, mode, on_text, view=view, call_prior=first_step)
        usage = _usage_of(gen)
        proposal = self._read(gen, usage, engine, context)
        proposal.dropped_turns = dropped
        if proposal.valid or not allow_repair:
            return proposal
        error = "; ".join(v.error or "" for v in proposal.validations if not v.valid)
        if not proposal.validations:
            error = proposal.error or "the output was not a valid call"
        names = {c.name for c in proposal.calls if c.name in self.registry}
        repair_mode = names.pop() if len(names) == 1 and len(proposal.calls) == 1 else "required"
        repair = [
            *messages,
            {"role": "assistant", "content": proposal.raw},
            {"role": "user", "content": repair_message(error)},
        ]
        # the repair asks for the calls again, no more of them than the first output had
        max_calls = min(MAX_CALLS, max(1, len(proposal.calls)))
        gen2, engine = self._decode(repair, repair_mode, None, max_calls)
        usage.add(_usage_of(gen2))
        repaired = self._read(gen2, usage, engine, context, repaired=True)
        repaired.dropped_turns = dropped
        if repaired.valid:
            return repaired
        proposal.usage = usage
        return proposal

    def _read(self, gen, usage: Usage, engine: str, context, repaired: bool = False) -> Proposal:
        from edgeagent.grammar.envelope import first_of_each, parse_envelope

        text = gen.text
        try:
            parsed = parse_envelope(text)
        except EnvelopeParseError as exc:
            error = f"{exc.message} (output ended: {gen.finish_reason})"
            return Proposal(
                None, [], [], 0.0, usage, text, repaired, engine, gen.finish_reason, error
            )
        if isinstance(parsed, str):
            conf = answer_confidence(gen.choices)
            return Proposal(
                parsed.strip(), [], [], conf.score, usage, text, repaired, engine, gen.finish_reason
            )
        calls = [ToolCall(p.name, dict(p.arguments), repaired=repaired) for p in parsed]
        validations = [
            validate_call(c, self.registry, context, getattr(self, "request_text", ""))
            for c in calls
        ]
        verdicts = [(0.6 if repaired else 1.0) if v.valid else 0.0 for v in validations]
        for call, conf in zip(
            calls, call_confidences(gen.choices, len(calls), verdicts), strict=True
        ):
            call.confidence, call.confidence_parts = conf.score, conf.parts
        keep, dropped = first_of_each(parsed)
        calls = [calls[i] for i in keep]
        validations = [validations[i] for i in keep]
        score = min((c.confidence or 0.0) for c in calls)
        return Proposal(
            None,
            calls,
            validations,
            score,
            usage,
            text,
            repaired,
            engine,
            gen.finish_reason,
            duplicates_dropped=dropped,
            written=[parsed[i] for i in keep],
        )


def build_tool_registry(tools: Iterable | None, context, tools_files: Sequence = ()):
    """The registry for a request: given tools, else the built-ins, plus any tools files."""
    from edgeagent.tools.discovery import build_registry
    from edgeagent.tools.registry import ToolRegistry, as_tool

    if tools is not None:
        registry = ToolRegistry([as_tool(t) for t in tools])
        for path in tools_files:
            from edgeagent.tools.discovery import load_tools_file

            registry.extend(load_tools_file(path))
        return registry
    from edgeagent.tools.builtin import make_builtin_tools

    return build_registry(make_builtin_tools(context), tools_files=tools_files)


def propose_calls(
    messages: Sequence,
    tools: Iterable,
    *,
    model=None,
    settings: Settings | None = None,
    tool_choice: str = "auto",
) -> list[ToolCall]:
    """The validated calls the local model proposes for ``messages`` (nothing is executed).

    ``tools`` may mix typed functions, pydantic models, Tools and OpenAI-format dicts;
    ``model`` is a catalog id, a GGUF path or a loaded ``Model``. Invalid proposals come back
    with ``status="invalid"`` and their error; an answer instead of calls gives ``[]``.
    """
    from edgeagent.runtime.session import load_model

    settings = settings or load_settings()
    model = load_model(model, settings, cached=True)
    registry = build_tool_registry(list(tools), None)
    # the caller's system messages join ours (after the instructions, before the tools): one
    # system turn, as every chat template expects
    turns = as_chat_dicts(messages)
    system = [t["content"].strip() for t in turns if t["role"] == "system"]
    extra = "\n".join(text for text in system if text) or None
    proposer = LocalProposer(model, registry, settings, system_extra=extra)
    proposal = proposer.propose([t for t in turns if t["role"] != "system"], mode=tool_choice)
    return proposal.calls
