"""The agent loop: propose -> route -> execute -> feed results back, until an answer.

Tool results go back to the model inside delimited ``<tool_result>`` blocks as data. The loop ends
when the model answers, when no valid call can be made, or at ``settings.max_steps``. Everything
is emitted as typed events and written to the store as it happens.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from edgeagent.agent.prompt import tool_result_message
from edgeagent.agent.propose import (
    AgentResult,
    LocalProposer,
    Proposal,
    as_chat_dicts,
    build_tool_registry,
)
from edgeagent.agent.validate import validate_call
from edgeagent.config import Settings, load_settings
from edgeagent.errors import EdgeAgentError
from edgeagent.events import (
    CallExecuted,
    CallProposed,
    CallValidated,
    EventSink,
    Notice,
    RouteChosen,
    TokenDelta,
    TurnDone,
    ignore,
)
from edgeagent.types import RouteDecision, ToolCall, ToolResult, Usage, new_id

Confirm = Callable[[ToolCall, object], bool]


class Agent:
    """A local model with tools, a policy, a router and a history. One ``run`` per request."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        model=None,
        tools: Iterable | None = None,
        tools_files: Sequence[Path] = (),
        confirm: Confirm | None = None,
        auto_approve: bool = False,
        store=True,
        on_event: EventSink | None = None,
        engine: str = "llguidance",
        remote_client=None,
    ) -> None:
        from edgeagent.tools.context import ToolContext
        from edgeagent.tools.executor import Executor
        from edgeagent.tools.policy import Policy

        self.settings = settings or load_settings()
        self.model = self._model(model)
        if store is True:
            from edgeagent.store import Store

            store = Store(self.settings.db_path, secrets=self._secrets())
        self.store = store or None
        self.context = ToolContext(
            settings=self.settings,
            allowed_roots=self.settings.allowed_roots,
            allow_network=self.settings.allow_network and not self.settings.offline,
            store=self.store,
        )
        self.registry = build_tool_registry(tools, self.context, tools_files)
        self.proposer = LocalProposer(self.model, self.registry, self.settings, engine)
        policy = Policy(
            auto_approve=auto_approve,
            allow_network=self.context.allow_network,
            timeout_s=self.settings.tool_timeout_s,
            output_cap=self.settings.tool_output_cap,
        )
        self.executor = Executor(self.registry, policy, self.context, confirm)
        self.on_event: EventSink = on_event or ignore
        self.remote_client = remote_client
        self.history: list[dict] = []
        self._warmed = False
        self.prefix_source = "none"
        self.conversation_id = (
            self.store.start_conversation("", self.model.path.name) if self.store else new_id()
        )

    def _secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.settings.remote_api_key,) if s)

    def _model(self, model):
        from edgeagent.runtime.local import LocalModel

        if isinstance(model, LocalModel):
            return model
        settings = self.settings if model is None else self.settings.replace(model=str(model))
        from edgeagent.runtime.session import load_local_model

        return load_local_model(settings)

    # ---- routing -------------------------------------------------------------------------

    def _route(self, request_id: str, proposal: Proposal, messages: list[dict]):
        """Decide local vs remote; when remote, ask it and validate what it proposes."""
        from edgeagent.agent.router import decide_route

        decision = decide_route(proposal.confidence, valid=proposal.valid, settings=self.settings)
        if decision.route != "remote":
            self.on_event(RouteChosen(request_id, decision))
            return decision, proposal, None
        from edgeagent.agent.router import escalate, tools_for_remote
        from edgeagent.runtime.remote import RemoteClient

        client = self.remote_client or RemoteClient(self.settings)
        outcome = escalate(
            client, messages, tools_for_remote(self.registry), proposal.calls, decision
        )
        self.on_event(RouteChosen(request_id, outcome.decision))
        if outcome.decision.route != "remote":
            notice = outcome.notice or "the remote model failed; the local result is used"
            self.on_event(Notice(request_id, notice, "warning"))
            return outcome.decision, proposal, notice
        calls = list(outcome.calls)
        validations = [validate_call(c, self.registry, self.context) for c in calls]
        answer = None if calls else (outcome.text or None)  # calls already carry route="remote"
        remote = Proposal(
            answer,
            calls,
            validations,
            proposal.confidence,
            proposal.usage,
            outcome.text or "",
        )
        return outcome.decision, remote, None

    # ---- one request ---------------------------------------------------------------------

    def run(self, prompt: str) -> AgentResult:
        """Answer one request, running the tool calls the model makes on the way."""
        from edgeagent.metrics.energy import select_energy_meter

        started = time.perf_counter()
        request_id = (
            self.store.start_request(self.conversation_id, prompt, self.model.path.name)
            if self.store
            else new_id()
        )
        result = AgentResult(request_id, "", model=self.model.path.name)
        meter = select_energy_meter(self.settings)
        meter.start()
        self._warm_prefix(request_id, result)
        self.history.append({"role": "user", "content": prompt})
        self._log_message("user", prompt)
        status, error = "done", None
        try:
            self._steps(request_id, result)
        except EdgeAgentError as exc:
            status, error = "failed", str(exc)
            result.answer = result.answer or f"error: {exc}"
            result.notices.append(str(exc))
            raise
        finally:
            energy = meter.stop()
            result.energy_j, result.energy_source = energy.joules, energy.source
            result.energy_estimated = energy.estimated
            result.latency_s = time.perf_counter() - started
            self._finish(result, status, error)
        self.on_event(TurnDone(request_id, result.answer, result.calls, result.usage))
        return result

    def _warm_prefix(self, request_id: str, result: AgentResult) -> None:
        """Restore or build the system prompt's KV state once per process (never fatal)."""
        if self._warmed or not len(self.registry):
            return
        self._warmed = True
        try:
            warm = self.proposer.warm_prefix()
            self.prefix_source = warm.source
        except Exception as exc:  # noqa: BLE001 - a cache problem must not fail the request
            notice = f"prefix cache unavailable ({type(exc).__name__}: {exc}); continuing cold"
            result.notices.append(notice)
            self.on_event(Notice(request_id, notice, "warning"))

    def _steps(self, request_id: str, result: AgentResult) -> None:
        mode, last_signature = "auto", None
        for step in range(1, self.settings.max_steps + 1):
            result.steps = step
            proposal = self.proposer.propose(
                self.history,
                mode=mode,
                context=self.context,
                on_text=lambda text: self.on_event(TokenDelta(request_id, text)),
            )
            result.usage.add(proposal.usage)
            if proposal.duplicates_dropped:
                notice = f"dropped {proposal.duplicates_dropped} repeated identical call(s)"
                result.notices.append(notice)
                self.on_event(Notice(request_id, notice))
            for call, validation in zip(proposal.calls, proposal.validations, strict=True):
                self.on_event(CallProposed(request_id, call))
                self.on_event(CallValidated(request_id, call, validation.valid, validation.error))
            messages = [{"role": "system", "content": self.proposer.system}, *self.history]
            decision, proposal, notice = self._route(request_id, proposal, messages)
            result.route = decision
            if notice:
                result.notices.append(notice)
            if result.confidence is None or proposal.confidence < result.confidence:
                result.confidence = proposal.confidence
            if proposal.answer is not None:
                result.answer = proposal.answer
                self._remember_answer(proposal.answer)
                return
            valid = [
                c for c, v in zip(proposal.calls, proposal.validations, strict=True) if v.valid
            ]
            self._record_calls(request_id, proposal)
            result.calls.extend(proposal.calls)
            if not valid:
                reason = proposal.error or "; ".join(
                    v.error or "" for v in proposal.validations if not v.valid
                )
                if mode != "none" and step < self.settings.max_steps:
                    # no valid call even after the repair turn: answer in plain text instead
                    notice = f"no valid tool call ({reason}); answering without tools"
                    result.notices.append(notice)
                    self.on_event(Notice(request_id, notice))
                    mode = "none"
                    continue
                result.answer = f"I could not make a valid tool call: {reason}"
                self._remember_answer(result.answer)
                return
            signature = json.dumps([[c.name, c.arguments] for c in valid], sort_keys=True)
            if signature == last_signature:
                mode = "none"  # the same call again: make the model answer from what it has
                self.on_event(Notice(request_id, "repeated call; asking the model to answer"))
                continue
            last_signature = signature
            results = self.executor.run_many(valid)
            self._feed_back(request_id, proposal, valid, results, result)
            mode = "auto"
        result.answer = result.answer or self._fallback_answer(result)
        result.notices.append(f"stopped after {self.settings.max_steps} steps")

    def _feed_back(self, request_id, proposal, calls, results, result: AgentResult) -> None:
        """Append the calls and their results (as delimited data) to the conversation."""
        call_text = json.dumps(
            [{"name": c.name, "arguments": c.arguments} for c in calls]
            if len(calls) > 1
            else {"name": calls[0].name, "arguments": calls[0].arguments},
            ensure_ascii=False,
            separators=(",", ":"),
        )
        self.history.append({"role": "assistant", "content": call_text})
        self._log_message("assistant", call_text)
        for call, res in zip(calls, results, strict=True):
            call.status = res.status
            result.results.append(res)
            self.on_event(CallExecuted(request_id, call, res))
            if self.store:
                self.store.update_tool_call(call.id, res)
            body = res.output if res.ok else (res.error or res.status)
            message = tool_result_message(call.name, call.id, body, res.ok)
            self.history.append({"role": "tool", "content": message})
            self._log_message("tool", message, name=call.name, call_id=call.id)

    @staticmethod
    def _fallback_answer(result: AgentResult) -> str:
        ok = [r for r in result.results if r.ok]
        return ok[-1].output[:2000] if ok else "I could not finish this request."

    def _remember_answer(self, answer: str) -> None:
        self.history.append({"role": "assistant", "content": answer})
        self._log_message("assistant", answer)

    # ---- history -------------------------------------------------------------------------

    def _log_message(self, role: str, content: str, **extra) -> None:
        if self.store:
            self.store.add_message(self.conversation_id, role, content, **extra)

    def _record_calls(self, request_id: str, proposal: Proposal) -> None:
        if not self.store:
            return
        for call, validation in zip(proposal.calls, proposal.validations, strict=True):
            self.store.add_tool_call(
                request_id,
                call,
                schema_valid=validation.schema_valid,
                semantic_valid=validation.semantic_valid,
                validation_error=validation.error,
            )

    def _finish(self, result: AgentResult, status: str, error: str | None) -> None:
        if not self.store:
            return
        usage: Usage = result.usage
        decision: RouteDecision | None = result.route
        self.store.finish_request(
            result.request_id,
            status=status,
            answer=result.answer,
            route=decision.route if decision else "local",
            route_reason=decision.reason if decision else "",
            confidence=result.confidence,
            confidence_threshold=self.settings.confidence_threshold,
            latency_s=result.latency_s,
            ttft_s=usage.ttft_s,
            prompt_tokens=usage.prompt_tokens,
            cached_prompt_tokens=usage.cached_prompt_tokens,
            output_tokens=usage.output_tokens,
            energy_j=result.energy_j,
            energy_source=result.energy_source,
            energy_estimated=result.energy_estimated,
            engine=self.proposer.engine_name,
            error=error,
        )

    def close(self) -> None:
        """Close the store (the model stays loaded for whoever passed it in)."""
        if self.store:
            self.store.close()


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
    ``model`` is a catalog id, a GGUF path or a loaded ``LocalModel``. Invalid proposals come
    back with ``status="invalid"`` and their error; an answer instead of calls gives ``[]``.
    """
    from edgeagent.runtime.local import LocalModel
    from edgeagent.runtime.session import cached_local_model

    settings = settings or load_settings()
    if not isinstance(model, LocalModel):
        model = cached_local_model(
            settings if model is None else settings.replace(model=str(model))
        )
    registry = build_tool_registry(list(tools), None)
    # the caller's system messages join ours (after the instructions, before the tools): one
    # system turn, as every chat template expects
    turns = as_chat_dicts(messages)
    system = [t["content"].strip() for t in turns if t["role"] == "system"]
    extra = "\n".join(text for text in system if text) or None
    proposer = LocalProposer(model, registry, settings, system_extra=extra)
    proposal = proposer.propose([t for t in turns if t["role"] != "system"], mode=tool_choice)
    return proposal.calls


__all__ = ["Agent", "AgentResult", "ToolResult", "propose_calls"]
