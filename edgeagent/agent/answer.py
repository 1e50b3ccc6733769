"""What the user reads: the model's answer cleaned of leaked markup, checked against tool results,
and honest about where the decode stopped.

A small model often echoes the ``<tool_result>`` block it was shown, starts a new chat turn
(``<|im_start|>``), recomputes what the calculator already computed (and gets it wrong), or runs
into its token bound mid-sentence. Each of these is repaired here or said out loud, never passed on
silently.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from edgeagent.agent.prompt import RESULT_CLOSE, RESULT_OPEN

# Markup that must never reach an answer: our tool-result delimiters and the turn markers of the
# chat families we support. The answer is cut where the first one starts (what follows is the
# model talking to itself).
LEAK_MARKERS: tuple[str, ...] = (
    RESULT_OPEN,
    RESULT_CLOSE,
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<start_of_turn>",
    "<end_of_turn>",
    "<|eot_id|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|begin_of_text|>",
    "<|assistant|>",
    "<|user|>",
    "<|system|>",
    "<|end|>",
    "[INST]",
    "[/INST]",
    "<tool_call>",
    "</tool_call>",
)
NO_ANSWER = "I could not produce an answer to this request."


@dataclass(frozen=True)
class CleanAnswer:
    """The answer as shown, and what was done to it (notices for the user)."""

    text: str
    notices: tuple[str, ...] = ()


def strip_leaks(text: str, extra_markers: Iterable[str] = ()) -> tuple[str, bool]:
    """``text`` cut at the first leaked marker (and trimmed); whether anything was cut."""
    markers = [m for m in (*LEAK_MARKERS, *extra_markers) if m]
    cut = min((i for m in markers if (i := text.find(m)) != -1), default=-1)
    if cut == -1:
        return text.strip(), False
    return text[:cut].strip(), True


def stop_notice(finish_reason: str, *, raw_chars: int, settings) -> str | None:
    """A notice when the decode ended at a bound rather than where the model stopped."""
    if finish_reason == "length":
        return (
            f"the answer was cut at the {settings.max_tokens}-token limit "
            "(raise max_tokens to get more)"
        )
    if finish_reason == "timeout":
        return (
            f"the answer was cut at the {settings.decode_timeout_s:g} s time limit "
            "(raise decode_timeout_s to get more)"
        )
    if finish_reason == "repetition":
        return "the answer was stopped because the model kept repeating itself"
    if finish_reason == "grammar" and raw_chars >= settings.answer_cap:
        return (
            f"the answer was cut at {settings.answer_cap} characters (raise answer_cap to get more)"
        )
    return None


RECITAL_CHARS = 40


def recites(text: str, source: str, window: int = RECITAL_CHARS) -> bool:
    """Whether ``text`` copies ``window`` consecutive characters of ``source`` (the system
    prompt: instructions and tool list are not an answer)."""
    flat, known = " ".join(text.split()), " ".join(source.split())
    if len(known) < window or len(flat) < window:
        return False
    # every window of the prompt, at every offset (a copy need not start on a boundary)
    windows = {known[i : i + window] for i in range(len(known) - window + 1)}
    return any(flat[i : i + window] in windows for i in range(len(flat) - window + 1))


def clean_answer(
    text: str,
    *,
    finish_reason: str = "stop",
    settings=None,
    extra_markers: Iterable[str] = (),
    system_prompt: str = "",
) -> CleanAnswer:
    """The answer without leaked markup, never blank, with notices for what happened."""
    notices: list[str] = []
    cleaned, cut = strip_leaks(text, extra_markers)
    if cut:
        notices.append("removed chat markup the model wrote into its answer")
    if system_prompt and recites(cleaned, system_prompt):
        notices.append("the model recited its instructions instead of answering")
        cleaned = ""
    if settings is not None:
        notice = stop_notice(finish_reason, raw_chars=len(text), settings=settings)
        if notice:
            notices.append(notice)
    if not cleaned:
        if not any("recited" in n for n in notices):
            notices.append("the model produced an empty answer (confidence 0)")
        cleaned = NO_ANSWER
    return CleanAnswer(cleaned, tuple(notices))


def _normalized(text: str) -> str:
    return " ".join(text.lower().replace(",", "").split())


def ground_answer(
    answer: str, groundings: Sequence[tuple[tuple[str, ...], str, str]]
) -> CleanAnswer:
    """Make sure the answer carries the result of each value tool that ran (calculator, time).

    ``groundings`` holds ``(facts, direct_answer, tool_name)`` for each successful call whose tool
    defines ``grounding``. When the answer misses every fact of one of them (the model recomputed
    "12 * 7 = 80", or described the tool instead of using it), the tools' own direct answers
    replace it, with a notice.
    """
    shown = _normalized(answer)
    missing = [
        name
        for facts, _direct, name in groundings
        if facts and not any(_normalized(f) in shown for f in facts if f)
    ]
    if not missing:
        return CleanAnswer(answer)
    direct = "\n".join(dict.fromkeys(d for _facts, d, _name in groundings))
    tools = ", ".join(dict.fromkeys(missing))
    return CleanAnswer(
        direct,
        (f"the model's answer did not use the result of {tools}; showing the result instead",),
    )


_CONTENT_WORD = re.compile(r"[a-z0-9][a-z0-9_.\-]{2,}")
MAX_SHOWN_RESULT = 1500


def _content_words(text: str) -> set[str]:
    return {w.strip(".-_") for w in _CONTENT_WORD.findall(text.lower())} - {""}


def show_result(name: str, output: str) -> str:
    """A tool's output as the user reads it: JSON objects as ``key: value`` lines, capped."""
    text = output
    try:
        data = json.loads(output)
    except ValueError:
        data = None
    if isinstance(data, dict):
        text = "\n".join(
            f"{k}: {v if isinstance(v, str | int | float) or v is None else json.dumps(v)}"
            for k, v in data.items()
        )
    if len(text) > MAX_SHOWN_RESULT:
        text = text[:MAX_SHOWN_RESULT] + f"\n[... {len(text) - MAX_SHOWN_RESULT} more characters]"
    return f"{name} returned:\n{defang_markup(text)}"


# chat-template and tool-result markup inside data: "<|im_start|>", "</tool_result>", "[INST]"
_MARKUP = re.compile(
    r"<\|\s*([\w.-]{1,40})\s*\|>|<\s*(/?\s*(?:tool_result|start_of_turn|end_of_turn)\b[^<>]{0,80})>"
    r"|\[(/?INST)\]",
    re.IGNORECASE,
)


def defang_markup(text: str) -> str:
    """Template and delimiter markup in shown data written in plain parentheses (``(im_start)``),
    so a file that contains them is shown as the data it is, never as markup."""

    def plain(match: re.Match) -> str:
        inner = next(g for g in match.groups() if g is not None)
        return "(" + " ".join(inner.split()).replace("/ ", "/") + ")"

    return _MARKUP.sub(plain, text)


def ground_in_results(
    answer: str, results: Sequence[tuple[str, str]], request_text: str, ignore: Iterable[str] = ()
) -> CleanAnswer:
    """Show the results when the answer uses none of them.

    ``results`` are ``(tool name, output)`` of the successful calls of this request. An answer
    that shares no content word with any output (beyond the words of the request itself and of
    the tool names, e.g. one that recites a tool's description) did not use them: the results
    are shown instead, so the user reads data, not a guess.
    """
    outputs = [(n, o) for n, o in results if o.strip()]
    if not outputs:
        return CleanAnswer(answer)
    said = _content_words(request_text) | {w.lower() for w in ignore}
    found = set().union(*(_content_words(o) for _n, o in outputs)) - said
    if not found or _content_words(answer) & found:
        return CleanAnswer(answer)
    name, output = outputs[-1]
    return CleanAnswer(
        show_result(name, output),
        (f"the model's answer did not use what {name} returned; showing the result",),
    )


MAX_CITED_LINES = 2
MAX_CITED_CHARS = 240


def relevant_lines(request_text: str, output: str, ignore: Iterable[str] = ()) -> list[str]:
    """The lines of a text output sharing the most content words with the request (at most
    ``MAX_CITED_LINES``, in their order; none when no line shares a word)."""
    from edgeagent.agent.retrieval import ARITHMETIC_WORD, without_paths, words

    skip = set().union(*(words(w) for w in ignore)) if ignore else set()
    asked = words(without_paths(request_text)) - skip - {ARITHMETIC_WORD}
    if not asked:
        return []
    scored = []
    for index, raw in enumerate(output.splitlines()):
        line = raw.strip()
        if not line or len(line) > MAX_CITED_CHARS:
            continue
        shared = len(words(line) & asked)
        if shared:
            scored.append((shared, index, line))
    if not scored:
        return []
    best = max(score for score, _i, _l in scored)
    top = [(i, line) for score, i, line in scored if score == best][:MAX_CITED_LINES]
    return [line for _i, line in sorted(top)]


def cite_lines(
    answer: str, sources: Sequence[tuple[str, str]], request_text: str, ignore: Iterable[str] = ()
) -> str:
    """The answer, followed by the source lines it rests on when it does not state them.

    ``sources`` are ``(label, text output)`` of this request's results from tools that declare
    their output citable (``Tool.cite``). A small model often answers a question about a file
    with a guess; the line of the file that answers it, quoted under the answer as data, is what
    the user can check. A line the answer already contains word for word is not repeated.
    """
    quoted = []
    for label, output in sources:
        lines = relevant_lines(request_text, output, ignore)
        fresh = [ln for ln in lines if ln not in answer]
        if fresh:
            body = "\n".join(f"> {defang_markup(ln)}" for ln in fresh)
            quoted.append(f"From {label}:\n{body}")
    return "\n\n".join([answer, *quoted]) if quoted else answer


def not_done_lines(failures: Sequence[tuple[str, str]]) -> str:
    """One honest line per call that did not run or failed: ``Not done: TOOL: why``."""
    lines = dict.fromkeys(f"Not done: {name}: {why}" for name, why in failures)
    return "\n".join(lines)


def fallback_answer(results) -> str:
    """At the step limit: the last good result shown as data, and what was not done."""
    ok = [r for r in results if r.ok]
    text = show_result(ok[-1].name, ok[-1].output) if ok else "I could not finish this request."
    failed = [(r.name, r.error or r.status) for r in results if not r.ok]
    return f"{text}\n\n{not_done_lines(failed)}" if failed else text
