"""Typed events from the agent to whoever asked (TUI widgets, the CLI printer, tests)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from edgeagent.types import RouteDecision, ToolCall, ToolResult, Usage


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
    """A call passed or failed validation; ``error`` says why it failed."""

    request_id: str
    call: ToolCall
    valid: bool
    error: str | None = None


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
    """The request finished: the answer and everything measured about it."""

    request_id: str
    answer: str
    calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)


Event = TokenDelta | CallProposed | CallValidated | RouteChosen | CallExecuted | Notice | TurnDone
EventSink = Callable[[Event], None]


def ignore(_event: Event) -> None:
    """An event sink that drops everything."""
