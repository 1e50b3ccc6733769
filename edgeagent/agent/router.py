"""Routing: keep a request local, or escalate it to the remote model when the local result is weak.

Offline by default. ``decide_route`` is a pure function of the score, the validator's verdict
and the settings: with the network off or no remote configured the route is always local.
``escalate`` asks the remote (only the tools that are not ``local_only``) and, when the remote
fails, keeps the local calls with route ``"local_fallback"`` and a notice for the user.
``Router`` does both for a session and creates its ``RemoteClient`` only when a route is first
remote, so with the network off no client and no socket ever exist; ``route_request`` is one
routing through a Router.

This module is also the trust boundary for what crosses to and from the remote:
``remote_messages`` is everything the remote is sent (a system prompt naming only the tools that
are not local-only, and the history without entries marked ``HIDE_KEY``), and
``screen_remote_calls`` is the one place that decides which remote calls may be validated:
unknown tools, local-only tools and calls already marked invalid (unparseable or non-object
arguments) are rejected by name first and never reach validation, so never get defaults.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from edgeagent.agent.validate import Validation, validate_call
from edgeagent.config import Settings
from edgeagent.errors import EdgeAgentError, OfflineError, RemoteError
from edgeagent.runtime.remote import RemoteClient, RemoteReply
from edgeagent.tools.registry import Tool, ToolRegistry, as_tool
from edgeagent.types import Message, Route, RouteDecision, ToolCall

log = logging.getLogger(__name__)

ToolsArg = ToolRegistry | Iterable[Any]

# The loop's history is ``types.Message`` (``hidden``, ``remote_content``); callers passing
# plain dicts mark them with these keys: HIDE_KEY=True is never sent to the remote;
# REMOTE_CONTENT_KEY replaces the content that is sent (e.g. only the remote-visible calls).
HIDE_KEY = "local_only"
REMOTE_CONTENT_KEY = "remote_content"


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
    if not settings.network_allowed:
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


def rejection(call: ToolCall, offered: Iterable[str]) -> str | None:
    """Why a remote ``call`` may not even be validated (None if it may).

    Calls already marked invalid (no name, arguments that do not parse or are not an object)
    keep their error; tools that were not offered are refused by name. A local-only tool gets
    the same message as an unknown one, since the message goes back to the remote with the
    history: it must not learn which local-only tools exist by probing names.
    """
    if call.status == "invalid":
        return call.error or "the remote call was malformed"
    offered_set = set(offered)
    if call.name not in offered_set:
        available = ", ".join(sorted(offered_set)) or "none"
        return f"tool {call.name!r} was not offered to the remote model; offered: {available}"
    if not isinstance(call.arguments, dict):
        return f"arguments must be a JSON object, got {type(call.arguments).__name__}"
    return None


def check_remote_calls(
    calls: list[ToolCall], offered: Iterable[str], local_only: Iterable[str] = ()
) -> list[ToolCall]:
    """Mark calls naming a local-only tool or a tool that was not offered as invalid."""
    allowed = set(offered) - set(local_only)
    for call in calls:
        reason = rejection(call, allowed)
        if reason is not None:
            call.status, call.error = "invalid", reason
    return calls


def screen_remote_calls(
    calls: Sequence[ToolCall], registry: ToolRegistry, context=None
) -> list[Validation]:
    """The trust boundary for remote calls: reject by name first, then validate the rest.

    At most ``MAX_CALLS`` calls of one reply are considered (the local model's bound);
    the rest are rejected, so a reply of 3,000 writes never asks 3,000 times.

    A rejected call stays ``status="invalid"`` with its error and is never passed to
    ``validate_call`` (so empty arguments are never completed with the tool's defaults).
    Returns one Validation per call, in order.
    """
    from edgeagent.grammar.envelope import MAX_CALLS

    tools = list(registry)
    offered = {t.name for t in tools if not t.local_only}
    validations = []
    for index, call in enumerate(calls):
        call.route = "remote"
        reason = rejection(call, offered)
        if reason is None and index >= MAX_CALLS:  # the local model's own bound
            reason = (
                f"the remote proposed {len(calls)} calls in one reply; at most "
                f"{MAX_CALLS} are considered"
            )
        if reason is None:
            validations.append(validate_call(call, registry, context))
            continue
        call.status, call.error = "invalid", reason
        validations.append(Validation(call, call.name in offered, False, False, reason))
    return validations


def remote_messages(history: Sequence[Message | dict], tools: ToolsArg) -> list[dict]:
    """Everything the remote is sent: a system prompt over the remote-visible tools only, and
    the history without hidden entries (``remote_content`` replaces content where set)."""
    from edgeagent.agent.prompt import system_prompt

    visible = [t for t in _as_tools(tools) if not t.local_only]
    out = [{"role": "system", "content": system_prompt(visible)}]
    for entry in history:
        if isinstance(entry, Message):
            hidden, role = entry.hidden, entry.role
            content = entry.content if entry.remote_content is None else entry.remote_content
        else:
            hidden, role = bool(entry.get(HIDE_KEY)), entry["role"]
            content = entry.get(REMOTE_CONTENT_KEY, entry.get("content"))
        if not hidden:
            out.append({"role": role, "content": content or ""})
    return out


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


class Router:
    """Routes a session's proposals: ``decide_route``, then ``escalate`` when remote.

    The remote client is created at the first escalation (none with the network off) and kept
    for the session; ``close`` closes it unless it was given by the caller.
    """

    def __init__(self, settings: Settings, client: RemoteClient | None = None) -> None:
        self.settings = settings
        self._client = client
        self._owns_client = client is None

    def route(
        self,
        messages: list[dict] | list[Message] | Callable[[], list],
        tools: ToolsArg,
        local_calls: list[ToolCall],
        score: float | None,
        *,
        valid: bool,
        tool_choice: str | dict = "auto",
        max_tokens: int = 512,
    ) -> EscalationOutcome:
        """The route for one proposal; ``messages`` may be a function (built only if remote)."""
        decision = decide_route(score, valid=valid, settings=self.settings)
        if decision.route != "remote":
            return EscalationOutcome(route="local", decision=decision, calls=list(local_calls))
        try:
            client = self.client()
        except (RemoteError, OfflineError) as exc:
            return _fallback(decision, local_calls, exc)
        sent = messages() if callable(messages) else messages
        return escalate(
            client,
            sent,
            tools,
            local_calls,
            decision,
            tool_choice=tool_choice,
            max_tokens=max_tokens,
        )

    def client(self) -> RemoteClient:
        """The session's remote client (created on first use)."""
        if self._client is None:
            self._client = RemoteClient(self.settings)
        return self._client

    def close(self) -> None:
        """Close the client this router created (a given client stays with its owner)."""
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None


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
    """One routing through a ``Router`` (its own client, if it made one, is closed after)."""
    router = Router(settings, client)
    try:
        return router.route(
            messages,
            tools,
            local_calls,
            score,
            valid=valid,
            tool_choice=tool_choice,
            max_tokens=max_tokens,
        )
    finally:
        router.close()
