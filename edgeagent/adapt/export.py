"""History -> training records: the requests worth learning from, as OpenAI chat-format records.

What is taken (``export_history``):
- a request that finished (``done``), whose every call validated and ran ``ok`` (a call the
  user declined, that failed, was invalid or was skipped leaves the request out), and that the
  user did not mark ``bad`` nor correct in the next turn ("no, ...", "that's wrong", "undo");
- a request answered without a tool only when the decision is confirmed: the user marked it
  ``good`` (`edgeagent adapt mark ID good`) or the remote model answered it without a tool;
- with ``only_confirmed``, only requests marked ``good``.
Remote calls that validated and ran are taken like local ones: the remote is the teacher.

What the runtime added to an answer (quoted source lines, "Not done:" lines) is taken out: the
model is taught what it wrote, not what was shown. An answer written after tool results is kept
only if it is grounded (``answer_problem``: every number in it is in the request or a result, no
call-shaped JSON, no unclosed code fence); otherwise the record ends at its last call, so the
call is still learned but a guessed figure never is. The tools of a record are the registry's, as
the runtime showed them (all of them, in order).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from edgeagent.adapt.dataset import Scrubber, curate

CORRECTION = re.compile(
    r"^\s*(?:no\b|nope\b|wrong\b|that'?s (?:not|wrong)|that is (?:not|wrong)|not what\b|undo\b|"
    r"revert\b|don'?t\b|stop\b|incorrect\b)",
    re.IGNORECASE,
)
_RESULT = re.compile(
    r'^<tool_result name="[^"]*" id="[^"]*" status="(ok|error)">\n(.*)\n</tool_result>$', re.S
)
_CITED = re.compile(r"\n\nFrom [^\n]+:\n(?:> [^\n]*(?:\n|$))+")
_NOT_DONE = re.compile(r"(?:\n\n)?(?:Not done: [^\n]*(?:\n|$))+")


@dataclass
class ExportResult:
    """The records kept, and how many requests were left out for each reason."""

    records: list[dict]
    skipped: Counter = field(default_factory=Counter)
    considered: int = 0


def model_words(answer: str) -> str:
    """An answer without what the runtime appended (quoted sources, "Not done:" lines)."""
    text = _CITED.sub("\n", answer + "\n")
    text = _NOT_DONE.sub("\n", text)
    return text.strip()


_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
_CALL_SHAPED = re.compile(r'"(?:name|arguments)"\s*:')


def answer_problem(answer: str, sources: Sequence[str]) -> str | None:
    """Why an answer after tool results should not be learned, or None if it may be."""
    if _CALL_SHAPED.search(answer):
        return "call-shaped JSON in the answer"
    if answer.count("```") % 2:
        return "an unclosed code fence"
    known = "\n".join(sources)
    invented = [n for n in _NUMBER.findall(answer) if n not in known]
    if invented:
        return f"numbers in no result: {', '.join(invented[:3])}"
    return None


def _trim_ungrounded(messages: list[dict]) -> tuple[list[dict], str | None]:
    """The record, cut after its last call when its final answer is not grounded."""
    last = messages[-1]
    if last.get("tool_calls") or not any(m["role"] == "tool" for m in messages):
        return messages, None
    sources = [m.get("content") or "" for m in messages if m["role"] in ("user", "tool")]
    problem = answer_problem(last.get("content") or "", sources)
    if problem is None:
        return messages, None
    return _without_answer(messages), problem


def _without_answer(messages: list[dict]) -> list[dict] | None:
    """The record cut after its last call (None when it made no call)."""
    calls = [i for i, m in enumerate(messages) if m.get("tool_calls")]
    return messages[: calls[-1] + 1] if calls else None


def _segments(messages: Sequence[dict]) -> list[list[dict]]:
    """A conversation's messages split into one list per request (each starts at a user turn)."""
    out: list[list[dict]] = []
    for message in messages:
        if message["role"] == "user":
            out.append([message])
        elif out:
            out[-1].append(message)
    return out


def _tool_output(content: str) -> tuple[str, bool]:
    """The raw output inside a stored ``<tool_result>`` block, and whether it was ok."""
    found = _RESULT.match(content or "")
    if not found:
        return content or "", True
    return found.group(2).replace("</tool_result_>", "</tool_result>"), found.group(1) == "ok"


def _calls_of(content: str) -> list[dict] | None:
    """The calls an assistant turn made (its stored JSON), or None if it is an answer."""
    text = (content or "").strip()
    if not text.startswith(("{", "[")):
        return None
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return None
    items = parsed if isinstance(parsed, list) else [parsed]
    if not all(isinstance(i, dict) and "name" in i and "arguments" in i for i in items):
        return None
    return items


def _record_messages(segment: Sequence[dict]) -> list[dict] | None:
    """One request's stored turns in the OpenAI format (None if a call's result is missing)."""
    messages: list[dict] = []
    pending: list[str] = []  # ids of calls awaiting their result, in order
    counter = 0
    for message in segment:
        role, content = message["role"], message.get("content") or ""
        if role == "user":
            messages.append({"role": "user", "content": content})
        elif role == "assistant":
            calls = _calls_of(content)
            if calls is None:
                messages.append({"role": "assistant", "content": model_words(content)})
                continue
            tool_calls = []
            for call in calls:
                counter += 1
                call_id = f"call_{counter}"
                pending.append(call_id)
                arguments = json.dumps(call["arguments"], ensure_ascii=False)
                tool_calls.append(
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": call["name"], "arguments": arguments},
                    }
                )
            messages.append({"role": "assistant", "content": None, "tool_calls": tool_calls})
        elif role == "tool":
            if not pending:
                return None
            output, ok = _tool_output(content)
            if not ok:
                return None
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": pending.pop(0),
                    "name": message.get("name") or "",
                    "content": output,
                }
            )
    if pending or not messages or messages[-1]["role"] != "assistant":
        return None
    if not (messages[-1].get("content") or messages[-1].get("tool_calls")):
        return None
    return messages


def _reason_to_skip(
    request: dict, calls: list[dict], next_prompt: str | None, only_confirmed: bool
) -> str | None:
    if request.get("status") != "done":
        return f"not done ({request.get('status')})"
    feedback = request.get("feedback")
    if feedback == "bad":
        return "marked bad"
    if only_confirmed and feedback != "good":
        return "not marked good"
    if next_prompt is not None and CORRECTION.search(next_prompt):
        return "corrected by the user"
    for call in calls:
        if not (call.get("schema_valid") and call.get("semantic_valid")):
            return "a call did not validate"
        if call.get("status") != "ok":
            return f"a call did not run ok ({call.get('status')})"
    if not calls and feedback != "good" and request.get("route") != "remote":
        return "answer without a tool, not confirmed"
    return None


def export_history(
    store,
    tools: Sequence[dict],
    *,
    roots: Sequence = (),
    secrets: Iterable[str | None] = (),
    only_confirmed: bool = False,
    request_ids: Iterable[str] | None = None,
    since: float | None = None,
    max_per_cluster: int | None = None,
) -> ExportResult:
    """The history's useful requests as scrubbed, deduplicated, clustered training records.

    ``tools`` are OpenAI-format tool specs (``ToolRegistry.to_openai()``); ``roots`` the allowed
    roots (paths inside them become relative, others ``[path]``); ``request_ids`` limits the
    export to those requests; ``since`` to requests created after that time.
    """
    wanted = set(request_ids) if request_ids is not None else None
    scrubber = Scrubber(roots, secrets)
    result = ExportResult([])
    raw: list[dict] = []
    conversations = store.query("SELECT id FROM conversations ORDER BY created_at, rowid")
    for conversation in conversations:
        cid = conversation["id"]
        requests = store.query(
            "SELECT * FROM requests WHERE conversation_id = ? ORDER BY created_at, rowid", (cid,)
        )
        segments = _segments(store.messages(cid))
        cursor = 0  # segments and requests come in the same order; a request without turns
        for index, request in enumerate(requests):  # (it failed before its first) is skipped
            segment = None
            for position in range(cursor, len(segments)):
                if segments[position][0].get("content") == request["prompt"]:
                    segment, cursor = segments[position], position + 1
                    break
            if wanted is not None and request["id"] not in wanted:
                continue
            if since is not None and (request.get("created_at") or 0) <= since:
                continue
            result.considered += 1
            calls = store.query(
                "SELECT * FROM tool_calls WHERE request_id = ? ORDER BY created_at, rowid",
                (request["id"],),
            )
            following = requests[index + 1]["prompt"] if index + 1 < len(requests) else None
            reason = _reason_to_skip(request, calls, following, only_confirmed)
            if reason is None and segment is None:
                reason = "turns not found in the conversation"
            messages = _record_messages(segment) if reason is None else None
            if reason is None and messages is None:
                reason = "incomplete turns"
            if reason is not None:
                result.skipped[reason] += 1
                continue
            if request.get("answer_by") == "runtime":  # results shown: not the model's words
                messages, dropped = _without_answer(messages), "written by the runtime"
            else:
                messages, dropped = _trim_ungrounded(messages)
            if messages is None:
                result.skipped["answer written by the runtime"] += 1
                continue
            if dropped:
                result.skipped[f"answer not learned: {dropped.split(':')[0]}"] += 1
            record = {
                "messages": messages,
                "tools": list(tools),
                "metadata": {
                    "source": "history",
                    "request_id": request["id"],
                    "route": request.get("route") or "local",
                    "feedback": request.get("feedback"),
                    "model": request.get("model"),
                    "created_at": request.get("created_at"),
                    "answer_dropped": dropped,
                },
            }
            raw.append(scrubber.record(record))
    result.records, left_out = curate(raw, max_per_cluster)
    result.skipped.update(left_out)
    return result
