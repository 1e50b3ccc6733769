"""Routing: keep a request local, or escalate it to the remote model when the local result is weak.

Offline by default. ``decide_route`` is a pure function of the score, the validator's verdict
and the settings: with the network off or no remote configured the route is always local.
``escalate`` asks the remote (only the tools that are not ``local_only``) and, when the remote
fails, keeps the local calls with route ``"local_fallback"`` and a notice for the user.
``route_request`` does both and creates a ``RemoteClient`` only when the route is remote, so
with the network off no client and no socket ever exist.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from edgeagent.config import Settings
from edgeagent.errors import EdgeAgentError, OfflineError, RemoteError
from edgeagent.runtime.remote import RemoteClient, RemoteReply
from edgeagent.tools.registry import Tool, ToolRegistry, as_tool
from edgeagent.types import Message, Route, RouteDecision, ToolCall

log = logging.getLogger(__name__)

ToolsArg = ToolRegistry | Iterable[Any]


@dataclass(frozen=True)
class EscalationOutcome:
    """The result of routing one request.

    ``route`` is ``"local"`` (never escalated), ``"remote"`` (the remote answered: ``calls`` and
    ``text`` are its own, each call with ``route="remote"``) or ``"local_fallback"`` (the remote
    failed: ``calls`` are the local ones and ``notice`` tells the user why). ``decision`` is the
    final RouteDecision (its reason extended with the failure on fallback).
    """

    route: Route
    decision: RouteDecision
    calls: list[ToolCall] = field(default_factory=list)
    text: str = ""
    notice: str | None = None
    reply: RemoteReply | None = None
    error: dict | None = None


def network_allowed(settings: Settings) -> bool:
    """Whether the settings allow any network use."""
    return bool(settings.allow_network) and not settings.offline


def _fmt(score: float | None) -> str:
    return "none" if score is None else f"{score:.2f}"


def decide_route(score: float | None, *, valid: bool, settings: Settings) -> RouteDecision:
    """Local or remote, with the reason.

    Local when the network is off (reason starts with ``"network off"``), when no remote URL is
    configured, or when the local result is valid and ``score >= confidence_threshold`` (a valid
    result without a score, e.g. a plain answer, stays local too). Otherwise remote.
    """
    threshold = float(settings.confidence_threshold)
    confident = valid and (score is None or score >= threshold)
    if confident:
        why = (
            "valid local result without a confidence score"
            if score is None
            else f"confidence {_fmt(score)} >= threshold {threshold:.2f}"
        )
    elif not valid:
        why = f"local result invalid (confidence {_fmt(score)}, threshold {threshold:.2f})"
    else:
        why = f"confidence {_fmt(score)} < threshold {threshold:.2f}"
    if not network_allowed(settings):
        return RouteDecision("local", score, threshold, f"network off ({why})")
    if not (settings.remote_url or "").strip():
        suffix = "" if confident else "; set EDGEAGENT_REMOTE_URL to escalate"
        return RouteDecision("local", score, threshold, f"no remote configured ({why}{suffix})")
    if confident:
        return RouteDecision("local", score, threshold, why)
    return RouteDecision("remote", score, threshold, why)


def _as_tools(tools: ToolsArg) -> list[Tool]:
    return list(tools) if isinstance(tools, ToolRegistry) else [as_tool(t) for t in tools]


def tools_for_remote(tools: ToolsArg) -> list[dict]:
    """OpenAI-format schemas of the tools that may be sent to a remote model (not local_only).

    Accepts a ToolRegistry or anything ``as_tool`` accepts (Tools, functions, OpenAI dicts).
    """
    return [t.to_openai() for t in _as_tools(tools) if not t.local_only]


def _offered(tools: ToolsArg) -> tuple[list[dict], set[str]]:
    """(schemas to send, names of local-only tools) from tools or already-filtered dicts."""
    if isinstance(tools, ToolRegistry):
        items: list[Any] = list(tools)
    else:
        items = list(tools)
    if items and all(isinstance(t, dict) for t in items):
        return items, set()
    made = _as_tools(items)
    return tools_for_remote(made), {t.name for t in made if t.local_only}


def _tool_name(schema: dict) -> str | None:
    body = schema.get("function") if isinstance(schema.get("function"), dict) else schema
    name = body.get("name")
    return name if isinstance(name, str) else None


def check_remote_calls(
    calls: list[ToolCall], offered: Iterable[str], local_only: Iterable[str] = ()
) -> list[ToolCall]:
    """Mark calls naming a local-only tool or a tool that was not offered as invalid."""
    offered_set, local_set = set(offered), set(local_only)
    for call in calls:
        if call.status == "invalid":
            continue
        if call.name in local_set:
            call.status = "invalid"
            call.error = f"tool {call.name!r} is local-only and was not offered to the remote model"
        elif call.name not in offered_set:
            available = ", ".join(sorted(offered_set)) or "none"
            call.status = "invalid"
            call.error = f"unknown tool {call.name!r}; available tools: {available}"
    return calls


def _fallback(
    decision: RouteDecision, local_calls: list[ToolCall], error: EdgeAgentError
) -> EscalationOutcome:
    reason = f"{decision.reason}; remote failed: {error.message}"
    notice = f"The remote model could not be used ({error.message}); kept the local result."
    if error.hint:
        notice += f" Hint: {error.hint}."
    log.warning("escalation failed, using the local result: %s", error.message)
    return EscalationOutcome(
        route="local_fallback",
        decision=replace(decision, route="local_fallback", reason=reason),
        calls=list(local_calls),
        notice=notice,
        error=error.to_dict(),
    )


def escalate(
    client: RemoteClient | None,
    messages: list[dict] | list[Message],
    tools: ToolsArg,
    local_calls: list[ToolCall],
    decision: RouteDecision,
    *,
    tool_choice: str | dict = "auto",
    max_tokens: int = 512,
) -> EscalationOutcome:
    """Ask the remote model when ``decision.route == "remote"``; otherwise keep the local calls.

    ``tools`` is a ToolRegistry or a list of Tools (local-only ones are filtered out here), or
    a list of OpenAI dicts already filtered with ``tools_for_remote``. Remote calls naming a
    tool that was not offered become ``status="invalid"``. Any RemoteError or OfflineError
    (or a missing client) gives route ``"local_fallback"`` with the local calls and a notice.
    """
    if decision.route != "remote":
        return EscalationOutcome(route=decision.route, decision=decision, calls=list(local_calls))
    schemas, local_only = _offered(tools)
    if client is None:
        error = RemoteError("no remote client", hint="set EDGEAGENT_REMOTE_URL")
        return _fallback(decision, local_calls, error)
    try:
        reply = client.chat(messages, schemas, tool_choice=tool_choice, max_tokens=max_tokens)
    except (RemoteError, OfflineError) as exc:
        return _fallback(decision, local_calls, exc)
    offered = {n for n in map(_tool_name, schemas) if n}
    calls = check_remote_calls(list(reply.calls), offered, local_only)
    log.info(
        "escalated to %s: %d call(s) in %.2fs (%s)",
        reply.model or "remote",
        len(calls),
        reply.latency_s,
        decision.reason,
    )
    return EscalationOutcome(
        route="remote", decision=decision, calls=calls, text=reply.text, reply=reply
    )


def route_request(
    settings: Settings,
    messages: list[dict] | list[Message],
    tools: ToolsArg,
    local_calls: list[ToolCall],
    score: float | None,
    *,
    valid: bool,
    client: RemoteClient | None = None,
    tool_choice: str | dict = "auto",
    max_tokens: int = 512,
) -> EscalationOutcome:
    """``decide_route`` then, only if remote, ``escalate`` (creating and closing a client if none)."""
    decision = decide_route(score, valid=valid, settings=settings)
    if decision.route != "remote":
        return EscalationOutcome(route="local", decision=decision, calls=list(local_calls))
    own = client is None
    try:
        if own:
            client = RemoteClient(settings)
    except (RemoteError, OfflineError) as exc:
        return _fallback(decision, local_calls, exc)
    try:
        return escalate(
            client,
            messages,
            tools,
            local_calls,
            decision,
            tool_choice=tool_choice,
            max_tokens=max_tokens,
        )
    finally:
        if own and client is not None:
            client.close()
