"""Typed events: the agent loop's only output.

Whoever asked consumes them: the store's recorder (``store.recorder``) writes the history from
them, the app draws them, the CLI and tests read them. Each event is complete on its own; the
last one of a request, ``TurnDone``, carries the whole ``AgentResult``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edgeagent.types import RouteDecision, ToolCall, ToolResult, Usage

if TYPE_CHECKING:
    from edgeagent.agent.result import AgentResult


@dataclass(frozen=True)
class ConversationStarted:
    """A new conversation begins (its first request follows)."""

    conversation_id: str
    model: str
    title: str = ""


@dataclass(frozen=True)
class RequestStarted:
    """The user asked something; everything until ``TurnDone`` belongs to ``request_id``."""

    request_id: str
    conversation_id: str
    prompt: str
    model: str


@dataclass(frozen=True)
class MessageAdded:
    """A turn joined the conversation (user, assistant, or a tool result as data)."""

    request_id: str
    conversation_id: str
    role: str
    content: str
    name: str | None = None
    call_id: str | None = None


@dataclass(frozen=True)
class TokenDelta:
    """A piece of model output as it streams."""

    request_id: str
    text: str


@dataclass(frozen=True)
class CallProposed:
    """The model proposed a call (before validation)."""

    request_id: str
    call: ToolCall


@dataclass(frozen=True)
class CallValidated:
    """A call passed or failed validation; ``stage`` (tool, schema or semantic) and ``error``
    say where and why it failed."""

    request_id: str
    call: ToolCall
    valid: bool
    error: str | None = None
    schema_valid: bool = True
    semantic_valid: bool = True
    stage: str | None = None


@dataclass(frozen=True)
class CallsChosen:
    """The calls this step goes on with after routing (the local model's, or the remote's
    screened ones), each with its validation; they are recorded before any of them runs."""

    request_id: str
    checks: tuple[CallValidated, ...]


@dataclass(frozen=True)
class RouteChosen:
    """The router's decision for this turn."""

    request_id: str
    decision: RouteDecision


@dataclass(frozen=True)
class CallExecuted:
    """A call ran (or was declined / timed out); the result is data, never instructions."""

    request_id: str
    call: ToolCall
    result: ToolResult


@dataclass(frozen=True)
class Notice:
    """Something the user should know (remote failed, repair turn, model pulled)."""

    request_id: str
    text: str
    level: str = "info"


@dataclass(frozen=True)
class TurnDone:
    """The request ended (``result.status`` done or failed): the answer and everything
    measured about it (route, confidence, latency, energy, notices) in ``result``."""

    request_id: str
    answer: str
    calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    result: AgentResult | None = None


Event = (
    ConversationStarted
    | RequestStarted
    | MessageAdded
    | TokenDelta
    | CallProposed
    | CallValidated
    | CallsChosen
    | RouteChosen
    | CallExecuted
    | Notice
    | TurnDone
)
EventSink = Callable[[Event], None]


def ignore(_event: Event) -> None:
    """An event sink that drops everything."""
