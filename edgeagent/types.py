"""Plain data passed between stages: messages, calls, results, route decisions, usage."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
CallStatus = Literal[
    "proposed", "invalid", "declined", "ok", "error", "timeout", "skipped", "not_executed"
]
Route = Literal["local", "remote", "local_fallback"]


def new_id() -> str:
    """A short random id for calls, requests and conversations."""
    return uuid.uuid4().hex[:16]


@dataclass
class Message:
    """One chat message; tool results carry the call id and tool name they answer.

    ``hidden`` keeps it from the remote model (local-only data, or words written after seeing
    it); ``remote_content``, when set, is what the remote is sent instead of ``content``.
    """

    role: Role
    content: str
    name: str | None = None
    call_id: str | None = None
    hidden: bool = False
    remote_content: str | None = None

    def to_dict(self) -> dict:
        """The chat fields that are set (role, content, and name / call id for tool results)."""
        chat = {"role": self.role, "content": self.content, "name": self.name}
        return {k: v for k, v in {**chat, "call_id": self.call_id}.items() if v is not None}


@dataclass
class ToolCall:
    """A call proposed by a model, with what validation and execution made of it."""

    name: str
    arguments: dict[str, Any]
    id: str = field(default_factory=new_id)
    status: CallStatus = "proposed"
    error: str | None = None
    confidence: float | None = None
    confidence_parts: dict[str, float] = field(default_factory=dict)
    route: Route = "local"
    repaired: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    def arguments_json(self) -> str:
        return json.dumps(self.arguments, ensure_ascii=False, separators=(",", ":"))


@dataclass
class ToolResult:
    """What running a call produced: output text (capped) or an error, and how long it took."""

    call_id: str
    name: str
    status: CallStatus
    output: str = ""
    error: str | None = None
    error_type: str | None = None
    duration_s: float = 0.0  # the tool's own time; the user's time to confirm is not in it
    truncated: bool = False
    wait_s: float = 0.0  # time spent waiting for the user's confirmation

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RouteDecision:
    """Where a request went and why (score against threshold, network policy, remote failure)."""

    route: Route
    score: float | None
    threshold: float
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Usage:
    """Token counts and timings of one model turn."""

    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    output_tokens: int = 0
    sampled_tokens: int = 0
    ttft_s: float = 0.0
    total_s: float = 0.0

    def add(self, other: Usage) -> None:
        """Accumulate another turn's usage into this one."""
        self.prompt_tokens += other.prompt_tokens
        self.cached_prompt_tokens += other.cached_prompt_tokens
        self.output_tokens += other.output_tokens
        self.sampled_tokens += other.sampled_tokens
        self.total_s += other.total_s
        if not self.ttft_s:
            self.ttft_s = other.ttft_s
