"""The tool-choice envelope: one grammar over all tools, a plain-answer branch, parallel calls.

Wire format (compact JSON, fixed key order)::

    {"name":"<tool>","arguments":{...}}                     one call
    [{"name":...,"arguments":...},{...}]                    parallel calls (max_calls > 1)
    any text not starting with "{", "[" or whitespace       a plain answer (modes auto/none)

The chosen name selects that tool's argument grammar. Modes: ``auto`` (calls or answer),
``required`` (calls only), ``none`` (answer only), or a tool name (exactly one call to it).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from edgeagent.errors import EnvelopeParseError, GrammarError
from edgeagent.grammar.charsets import cs, json_text
from edgeagent.grammar.compiler import SchemaCompiler, ValidatorKeyword, check_schema_depth
from edgeagent.grammar.nodes import Cls, Lit, Ref, alt, rep, seq

__all__ = [
    "MAX_CALLS",
    "Envelope",
    "ParsedCall",
    "build_envelope",
    "describe_envelope_keywords",
    "parse_envelope",
    "first_of_each",
]

MODES = ("auto", "required", "none")
MAX_CALLS = 4  # parallel calls one reply may make: the envelope's bound and the remote's screen
ANSWER_FIRST_EXCLUDED = cs("{", "[", " ", "\t", "\n", "\r", "\0")


@dataclass(frozen=True)
class Envelope:
    """A compiled envelope grammar and what the validator must still check, per tool.

    ``gbnf`` is for llama.cpp; ``lark`` is the same language for llguidance (JSON-token lexing;
    prefer it to ``gbnf_to_lark(gbnf)``, which can reject valid calls).
    """

    gbnf: str
    lark: str
    tool_names: tuple[str, ...]
    mode: str
    max_calls: int
    validator_keywords: Mapping[str, tuple[ValidatorKeyword, ...]]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class ParsedCall:
    """One call read back from model output."""

    name: str
    arguments: dict


def build_envelope(
    tools: Sequence[tuple[str, dict]],
    *,
    mode: str = "auto",
    max_calls: int = 1,
    answer_cap: int = 1024,
    string_cap: int = 256,
    array_cap: int = 64,
    strict_objects: bool = True,
) -> Envelope:
    """Compile ``(name, parameters_schema)`` pairs into one tool-choice grammar (cached).

    Raises ``GrammarError`` for a schema that cannot be honoured (the message names the tool,
    ``keyword`` and ``path`` point inside its schema), a bad mode, or duplicate tool names.
    """
    try:
        key = json.dumps([[n, s] for n, s in tools], ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise GrammarError(f"tool schemas are not JSON: {exc}", keyword=None) from None
    except RecursionError:
        raise GrammarError("a tool schema is nested too deeply", keyword=None) from None
    for name, schema in tools:
        check_schema_depth(schema, f"the schema of tool {name!r}")
    return _build_cached(key, mode, max_calls, answer_cap, string_cap, array_cap, strict_objects)


@functools.lru_cache(maxsize=128)
def _build_cached(
    key: str,
    mode: str,
    max_calls: int,
    answer_cap: int,
    string_cap: int,
    array_cap: int,
    strict_objects: bool,
) -> Envelope:
    tools = [(name, schema) for name, schema in json.loads(key)]
    names = [name for name, _ in tools]
    for name in names:
        if not isinstance(name, str) or not name:
            raise GrammarError(f"tool names must be non-empty strings, got {name!r}", keyword=None)
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise GrammarError(f"duplicate tool names: {', '.join(dupes)}", keyword=None)
    if mode not in MODES and mode not in names:
        raise GrammarError(
            f"unknown tool-choice mode {mode!r}",
            keyword=None,
            hint=f"use one of {', '.join(MODES)} or a tool name",
        )
    if max_calls < 1 or answer_cap < 1:
        raise GrammarError("max_calls and answer_cap must be at least 1", keyword=None)
    if mode == "required" and not tools:
        raise GrammarError(
            "mode 'required' needs at least one tool", keyword=None, hint="use mode 'none'"
        )

    comp = SchemaCompiler(string_cap=string_cap, array_cap=array_cap, strict_objects=strict_objects)
    callable_tools = [(n, s) for n, s in tools if mode not in names or n == mode]
    if mode == "none":
        callable_tools = []
    per_tool: dict[str, tuple[ValidatorKeyword, ...]] = {}
    branches = []
    for name, schema in callable_tools:
        mark = comp.mark()
        try:
            rule = comp.compile(schema, name=f"{name}-args", require_object=True)
        except GrammarError as exc:
            raise GrammarError(
                f"tool {name!r}: {exc.message}", keyword=exc.keyword, path=exc.path, hint=exc.hint
            ) from None
        per_tool[name] = comp.keywords_since(mark)
        branches.append(seq(Lit(json_text(name) + ',"arguments":'), Ref(rule)))

    root_parts = []
    if branches:
        call = comp.add_rule("call", seq(Lit('{"name":'), alt(*branches), Lit("}")))
        root_parts.append(Ref(call))
        if max_calls > 1 and mode not in names:
            tail = rep(seq(Lit(","), Ref(call)), 0, max_calls - 1)
            root_parts.append(Ref(comp.add_rule("calls", seq(Lit("["), Ref(call), tail, Lit("]")))))
    if mode in ("auto", "none"):
        first = Cls(ANSWER_FIRST_EXCLUDED, negated=True)
        answer = seq(first, rep(Cls(cs("\0"), negated=True), 0, answer_cap - 1))
        root_parts.append(Ref(comp.add_rule("answer", answer, token=True)))
    comp.add_rule("root", alt(*root_parts))
    notes = comp.notes
    if mode in ("auto", "none"):
        notes = (*notes, f"plain answers are capped at {answer_cap} characters")
    gbnf, lark = comp.render("root")
    return Envelope(
        gbnf=gbnf,
        lark=lark,
        tool_names=tuple(names),
        mode=mode,
        max_calls=max_calls,
        validator_keywords=MappingProxyType(per_tool),
        notes=notes,
    )


def describe_envelope_keywords(envelope: Envelope) -> list[str]:
    """Lines for stderr naming, per tool, each keyword the validator (not the grammar) enforces."""
    return [
        f"note: tool {name}: {vk.keyword} at {vk.json_path} is enforced by the validator,"
        f" not the grammar ({vk.why})"
        for name, kws in envelope.validator_keywords.items()
        for vk in kws
    ]


def parse_envelope(text: str) -> list[ParsedCall] | str:
    """Read model output back: a list of calls, or the plain answer text.

    Output starting (after whitespace) with ``{`` or ``[`` must be a call or a non-empty list
    of calls in the wire format; anything else is an answer. Malformed calls raise
    ``EnvelopeParseError``.
    """
    stripped = text.strip()
    if not stripped.startswith(("{", "[")):
        return text
    try:
        data = json.loads(stripped)
    except json.JSONDecodeError as exc:
        raise EnvelopeParseError(
            f"the tool call is not valid JSON: {exc.msg} at character {exc.pos}",
            hint="the output was probably cut off; raise the token limit or retry",
        ) from None
    items = data if isinstance(data, list) else [data]
    if not items:
        raise EnvelopeParseError("the list of tool calls is empty")
    calls = []
    for i, item in enumerate(items):
        where = f"call {i}" if isinstance(data, list) else "the call"
        if not isinstance(item, dict) or set(item) != {"name", "arguments"}:
            keys = sorted(item) if isinstance(item, dict) else type(item).__name__
            raise EnvelopeParseError(
                f'{where} must be an object with exactly "name" and "arguments", got {keys}'
            )
        if not isinstance(item["name"], str) or not item["name"]:
            raise EnvelopeParseError(f"{where}: name must be a non-empty string")
        if not isinstance(item["arguments"], dict):
            raise EnvelopeParseError(f"{where}: arguments must be a JSON object")
        calls.append(ParsedCall(item["name"], item["arguments"]))
    return calls


def first_of_each(calls: Sequence[ParsedCall]) -> tuple[list[int], int]:
    """Indices of the calls to keep (the first of identical name+arguments), and how many dropped.

    Tiny models stutter in the parallel-call list (the same call two to four times); running
    an identical call twice only repeats its effect, so the agent keeps one.
    """
    seen: set[str] = set()
    keep = []
    for i, call in enumerate(calls):
        key = json.dumps([call.name, call.arguments], sort_keys=True, ensure_ascii=False)
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return keep, len(calls) - len(keep)
