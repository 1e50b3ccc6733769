"""Training datasets in the OpenAI chat format: read and check, scrub, deduplicate, cluster, write.

One JSON object per line, the format other trainers (TRL, Axolotl, OpenAI fine-tuning) read::

    {"messages": [{"role": "user", "content": "..."},
                  {"role": "assistant", "content": null,
                   "tool_calls": [{"id": "c1", "type": "function",
                                   "function": {"name": "read_file", "arguments": "{...}"}}]},
                  {"role": "tool", "tool_call_id": "c1", "content": "..."},
                  {"role": "assistant", "content": "..."}],
     "tools": [{"type": "function", "function": {"name": ..., "description": ..., "parameters": ...}}],
     "metadata": {"source": "history", "cluster": "read_file", ...}}

A ``system`` message, when present, joins the runtime's own instructions (as in ``propose_calls``).
An assistant message may carry ``"learn": "decision"``: only "answer without a tool here" is
learned from it, not its words (``adapt.render``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from edgeagent.errors import DatasetError

ROLES = ("system", "user", "assistant", "tool")
MAX_LINE_BYTES = 1 << 20

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}")
# key shapes worth catching even when no setting names them (OpenAI, Hugging Face, GitHub, AWS,
# Slack, bearer tokens, long hex or base64 blobs after "key"/"token"/"password")
KEY_SHAPES = re.compile(
    r"\b(?:sk-[A-Za-z0-9_-]{16,}|hf_[A-Za-z0-9]{20,}|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|AKIA[0-9A-Z]{16}|xox[abposr]-[A-Za-z0-9-]{10,})\b"
    r"|(?i:\bbearer\s+)[A-Za-z0-9._~+/=-]{16,}"
    r"|(?i:(?:api[_-]?key|token|secret|password|passwd)\s*[:=]\s*)[^\s\"',;]{6,}"
)
ABSOLUTE_PATH = re.compile(r"(?<![\w.~/])~?/(?:[\w.@+-]+/)*[\w.@+-]+/?")


def _fail(where: str, message: str) -> DatasetError:
    return DatasetError(
        f"{where}: {message}",
        "each line must be an OpenAI chat-format object with messages (and tools)",
    )


def check_record(obj, where: str = "record") -> dict:
    """``obj`` if it is a usable training record; DatasetError naming the first problem."""
    if not isinstance(obj, dict):
        raise _fail(where, f"expected a JSON object, got {type(obj).__name__}")
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _fail(where, "'messages' must be a non-empty list")
    tools = obj.get("tools", [])
    if not isinstance(tools, list):
        raise _fail(where, "'tools' must be a list")
    names = set()
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _fail(
                where, f"tools[{i}] must be {{'type': 'function', 'function': {{name,...}}}}"
            )
        params = function.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(params, dict):
            raise _fail(where, f"tools[{i}] ({function['name']}): 'parameters' must be an object")
        names.add(function["name"])
    open_calls: set[str] = set()
    assistant_turns = 0
    for i, message in enumerate(messages):
        at = f"messages[{i}]"
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise _fail(where, f"{at}: role must be one of {', '.join(ROLES)}")
        role, content = message["role"], message.get("content")
        if content is not None and not isinstance(content, str):
            raise _fail(where, f"{at}: content must be text or null")
        if role == "assistant":
            assistant_turns += 1
            calls = message.get("tool_calls") or []
            if not calls and not (content or "").strip():
                raise _fail(where, f"{at}: an assistant turn needs content or tool_calls")
            for j, call in enumerate(calls):
                function = call.get("function") if isinstance(call, dict) else None
                if not isinstance(function, dict) or function.get("name") not in names:
                    name = function.get("name") if isinstance(function, dict) else None
                    raise _fail(where, f"{at}.tool_calls[{j}]: unknown tool {name!r}")
                arguments = function.get("arguments", "{}")
                try:
                    parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
                except json.JSONDecodeError as exc:
                    raise _fail(
                        where, f"{at}.tool_calls[{j}]: arguments are not JSON ({exc})"
                    ) from exc
                if not isinstance(parsed, dict):
                    raise _fail(where, f"{at}.tool_calls[{j}]: arguments must be a JSON object")
                open_calls.add(str(call.get("id") or f"call_{i}_{j}"))
        elif role == "tool":
            if not isinstance(content, str):
                raise _fail(where, f"{at}: a tool message needs its output as content")
        elif not isinstance(content, str) or not content.strip():
            raise _fail(where, f"{at}: a {role} message needs text content")
    if not assistant_turns:
        raise _fail(where, "no assistant turn to learn from")
    return obj


def read_jsonl(path: str | Path) -> list[dict]:
    """Every record of a JSONL file, checked; DatasetError names the file and line of a bad one."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetError(f"{path} does not exist", "pass a JSONL file (edgeagent adapt export)")
    records = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            where = f"{path.name}:{number}"
            if len(raw) > MAX_LINE_BYTES:
                raise _fail(where, f"line longer than {MAX_LINE_BYTES // 1024} KB")
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise _fail(where, f"not JSON ({exc})") from exc
            records.append(check_record(obj, where))
    if not records:
        raise DatasetError(f"{path} holds no records", "export some history first")
    return records


def write_jsonl(records: Iterable[dict], path: str | Path) -> int:
    """Write records one per line (atomically: a partial file never replaces a good one)."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    count = 0
    with tmp.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
            count += 1
    tmp.replace(path)
    return count


# ---- scrubbing -------------------------------------------------------------------------------


class Scrubber:
    """Removes secrets and personal data from text: known secrets (every encoding), key shapes,
    e-mail addresses, and paths outside the allowed roots (paths inside become relative)."""

    def __init__(self, roots: Sequence[Path] = (), secrets: Iterable[str | None] = ()) -> None:
        self.roots = [Path(r).resolve() for r in roots]
        self.secrets = [s for s in secrets if s]
        self.home = str(Path.home())

    def path(self, found: str) -> str:
        expanded = self.home + found[1:] if found.startswith("~") else found
        for root in self.roots:
            text = str(root)
            if expanded == text:
                return "."
            if expanded.startswith(text.rstrip("/") + "/"):
                return expanded[len(text.rstrip("/")) + 1 :]
        return "[path]"

    def text(self, value: str) -> str:
        from edgeagent.secrets import scrub

        if not value:
            return value
        value = scrub(value, self.secrets) if self.secrets else value
        value = KEY_SHAPES.sub("[redacted]", value)
        value = EMAIL.sub("[email]", value)
        return ABSOLUTE_PATH.sub(lambda m: self.path(m.group(0)), value)

    def value(self, value):
        """Strings anywhere inside a JSON value, scrubbed."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        return value

    def record(self, record: dict) -> dict:
        """A copy of ``record`` with its messages and call arguments scrubbed (tools untouched)."""
        messages = []
        for message in record["messages"]:
            out = dict(message)
            if isinstance(out.get("content"), str):
                out["content"] = self.text(out["content"])
            if out.get("tool_calls"):
                out["tool_calls"] = [_scrub_call(call, self) for call in out["tool_calls"]]
            messages.append(out)
        return {**record, "messages": messages}


def _scrub_call(call: dict, scrubber: Scrubber) -> dict:
    function = dict(call["function"])
    arguments = function.get("arguments", "{}")
    parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
    function["arguments"] = json.dumps(scrubber.value(parsed), ensure_ascii=False)
    return {**call, "function": function}


# ---- deduplication and clusters ----------------------------------------------------------------


def cluster_of(record: dict) -> str:
    """The record's cluster: the sorted names of the tools it calls, or ``no_tool``."""
    called = sorted(
        {
            call["function"]["name"]
            for m in record["messages"]
            if m["role"] == "assistant"
            for call in m.get("tool_calls") or []
        }
    )
    return "+".join(called) or "no_tool"


def dedup_key(record: dict) -> str:
    """What makes two records the same lesson: the tool set, and every turn with whitespace and
    case folded in user text (a call's arguments compared as parsed JSON)."""
    parts = [",".join(sorted(t["function"]["name"] for t in record.get("tools", [])))]
    for m in record["messages"]:
        content = m.get("content") or ""
        if m["role"] == "user":
            content = " ".join(content.lower().split())
        calls = [
            (c["function"]["name"], _parsed(c["function"].get("arguments", "{}")))
            for c in m.get("tool_calls") or []
        ]
        parts.append(json.dumps([m["role"], content, calls], sort_keys=True, ensure_ascii=False))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _parsed(arguments):
    return json.loads(arguments) if isinstance(arguments, str) else arguments


def curate(
    records: Iterable[dict], max_per_cluster: int | None = None
) -> tuple[list[dict], Counter]:
    """Deduplicated records, each labelled with its cluster, at most ``max_per_cluster`` each
    (first come first kept); with the counts of what was left out and why."""
    kept: list[dict] = []
    seen: set[str] = set()
    per_cluster: Counter = Counter()
    left_out: Counter = Counter()
    for record in records:
        key = dedup_key(record)
        if key in seen:
            left_out["duplicate"] += 1
            continue
        seen.add(key)
        cluster = cluster_of(record)
        if max_per_cluster is not None and per_cluster[cluster] >= max_per_cluster:
            left_out["cluster full"] += 1
            continue
        per_cluster[cluster] += 1
        metadata = {**record.get("metadata", {}), "cluster": cluster}
        kept.append({**record, "metadata": metadata})
    return kept, left_out


def clusters(records: Iterable[dict]) -> Counter:
    """How many records each cluster holds."""
    return Counter(cluster_of(r) for r in records)


def dataset_digest(records: Sequence[dict]) -> str:
    """A short digest of the records' content (which data an adapter was trained on)."""
    digest = hashlib.sha256()
    for record in records:
        digest.update(dedup_key(record).encode())
    return digest.hexdigest()[:16]
