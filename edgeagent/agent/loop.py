"""The agent loop: propose -> route -> execute -> feed results back, until an answer.

Tool results go back to the model inside delimited ``<tool_result>`` blocks as data. The loop ends
when the model answers, when no valid call can be made, or at ``settings.max_steps``. Its only
output is typed events (``edgeagent.events``): the store's recorder writes the history from them,
the app and the CLI show them; ``TurnDone`` carries the whole ``AgentResult``.

An agent session is built once (``make_agent``) and driven through its methods: ``run`` one
request, ``new_conversation``, ``set_network``. The model is any ``runtime.model.Model``.

The remote boundary (``agent.router``): the remote is sent ``remote_messages`` (no local-only
tool, no history entry marked hidden) and its calls pass ``screen_remote_calls`` before anything
runs. History entries of local-only calls and results are marked hidden as they are appended,
and so is everything the local model writes later in the same request (it has seen the data).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from edgeagent.agent.prompt import calls_text, tool_result_message
from edgeagent.agent.propose import (
    LocalProposer,
    Proposal,
    build_tool_registry,
    propose_calls,
)
from edgeagent.agent.result import AgentResult
from edgeagent.config import Settings, load_settings
from edgeagent.errors import EdgeAgentError, RequestCancelled
from edgeagent.events import (
    CallExecuted,
    CallProposed,
    CallsChosen,
    CallValidated,
    ConversationStarted,
    Event,
    EventSink,
    MessageAdded,
    Notice,
    RequestStarted,
    RouteChosen,
    TokenDelta,
    TurnDone,
    ignore,
)
from edgeagent.types import Message, ToolCall, new_id

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
        from edgeagent.runtime.session import load_model

        self.settings = settings or load_settings()
        self.model = load_model(model, self.settings)
        if store is True:
            from edgeagent.store import Store

            store = Store(self.settings.db_path, secrets=self._secrets())
        self.store = store or None
        self._recorder: EventSink = ignore
        if self.store is not None:
            from edgeagent.store.recorder import StoreRecorder

            self._recorder = StoreRecorder(self.store)
        self.on_event: EventSink = on_event or ignore
        self.remote_client = remote_client
        self._tools = None if tools is None else list(tools)
        self._tools_files = tuple(tools_files)
        self._confirm = confirm
        self._auto_approve = auto_approve
        self.router = None  # agent.router.Router, built by _use_settings
        self.proposer: LocalProposer | None = None
        self._use_settings(self.settings)
        self._engine = engine
        self.proposer = LocalProposer(self.model, self.registry, self.settings, engine)
        self.history: list[Message] = []
        self._hold_local = False
        # per request: value-tool facts, successful outputs and failures, for the final answer
        self._groundings: list = []
        self._request_started = time.perf_counter()
        self._request_id = ""
        self._built_prefix_tokens = 0
        self._outputs: list[tuple[str, str]] = []
        self._sources: list[tuple[str, str]] = []
        self._failures: list[tuple[str, str]] = []
        self._warmed = False
        self.prefix_source = "none"
        self.conversation_id = new_id()
        self._conversation_open = False  # its ConversationStarted goes out with the first request
        self._cancel = threading.Event()
        self._running = False

    def _use_settings(self, settings: Settings) -> None:
        """Build what depends on the settings' network switch: tool context, tools, policy,
        executor and router (the model, the proposer's engine and the history stay)."""
        from edgeagent.agent.router import Router  # lazily: it brings httpx (0.3 s)
        from edgeagent.tools.context import ToolContext
        from edgeagent.tools.executor import Executor
        from edgeagent.tools.policy import Policy

        self.settings = settings
        self.context = ToolContext(
            settings=settings,
            allowed_roots=settings.allowed_roots,
            allow_network=settings.network_allowed,
            store=self.store,
        )
        self.registry = build_tool_registry(self._tools, self.context, self._tools_files)
        policy = Policy(
            auto_approve=self._auto_approve,
            allow_network=self.context.allow_network,
            timeout_s=settings.tool_timeout_s,
            output_cap=settings.tool_output_cap,
        )
        self.executor = Executor(self.registry, policy, self.context, self._confirm)
        if self.router is not None:
            self.router.close()
        self.router = Router(settings, self.remote_client)
        if self.proposer is not None:
            self.proposer.settings, self.proposer.registry = settings, self.registry

    def _secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.settings.remote_api_key,) if s)

    def _emit(self, event: Event) -> None:
        """The loop's only output: the store's recorder first, then the caller's sink.

        After ``cancel()`` the next event of the request (every streamed token is one) raises
        RequestCancelled instead: the decode stops within one token.
        """
        if self._cancel.is_set() and not isinstance(event, TurnDone):
            raise RequestCancelled("stopped by the user", "what ran before the stop is kept")
        self._recorder(event)
        self.on_event(event)

    def cancel(self) -> None:
        """Stop the running request at its next event (thread-safe; no-op when idle)."""
        if self._running:
            self._cancel.set()

    # ---- the session ---------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        """The model's name as shown and stored (its file name for a GGUF)."""
        return self.model.path.name

    def model_warnings(self) -> list[str]:
        """What the user should know about the model (e.g. a base, not instruct, model)."""
        from edgeagent.runtime.session import base_model_warning

        path = self.model.path
        warning = base_model_warning(path) if path.is_file() else None
        return [warning] if warning else []

    def stats(self) -> dict | None:
        """The history's production metrics (``metrics.stats``), None without a store or if
        they cannot be read."""
        if self.store is None:
            return None
        from edgeagent.metrics.stats import compute_stats

        try:
            return compute_stats(self.store)
        except EdgeAgentError:  # a damaged history: the app shows no figures, not an error
            return None

    def new_conversation(self) -> str:
        """Forget the working history and start a new conversation; returns its id."""
        self.history = []
        self.conversation_id = new_id()
        self._conversation_open = False
        return self.conversation_id

    def resume(self, conversation_id: str) -> list[Message]:
        """Continue a stored conversation (``store.conversations.resumed_history``)."""
        from edgeagent.errors import StoreError
        from edgeagent.store.conversations import resumed_history

        if self.store is None:
            raise StoreError("this session keeps no history to resume from", "use store=True")
        self.history = resumed_history(self.store, conversation_id)
        self.conversation_id = conversation_id
        self._conversation_open = True
        return list(self.history)

    def set_model(self, model) -> None:
        """Decode with another model (a Model, an id or a path) from the next request on; the
        history and the conversation stay. The old model is its owner's to close."""
        from edgeagent.runtime.session import load_model

        self.model = load_model(model, self.settings)
        self.proposer = LocalProposer(self.model, self.registry, self.settings, self._engine)
        self._warmed, self.prefix_source = False, "none"

    def set_network(self, on: bool) -> None:
        """Allow or forbid the network (remote model, network tools); on also clears offline."""
        self.update_settings(allow_network=bool(on), **({"offline": False} if on else {}))

    def update_settings(self, **changes) -> None:
        """Apply changed settings from the next request on: only the tool context, the tools
        built on it, the policy and the router are rebuilt (model, history and conversation
        stay); a new API key is scrubbed from the history like the first."""
        settings = self.settings.replace(**changes)
        if self.store is not None and settings.remote_api_key:
            self.store.add_secret(settings.remote_api_key)
        self._use_settings(settings)

    # ---- routing -------------------------------------------------------------------------

    def _route(self, request_id: str, proposal: Proposal):
        """Decide local vs remote (``Router``); when remote, screen what the remote proposes."""
        from edgeagent.agent.router import remote_messages, screen_remote_calls

        outcome = self.router.route(
            lambda: remote_messages(self.history, self.registry),
            self.registry,
            proposal.calls,
            proposal.confidence,
            valid=proposal.valid,
        )
        self._emit(RouteChosen(request_id, outcome.decision))
        if outcome.route == "local":
            return outcome.decision, proposal, None
        if outcome.decision.route != "remote":
            notice = outcome.notice or "the remote model failed; the local result is used"
            self._emit(Notice(request_id, notice, "warning"))
            return outcome.decision, proposal, notice
        calls = list(outcome.calls)  # each with route="remote"
        validations = screen_remote_calls(calls, self.registry, self.context)
        answer = None if calls else (outcome.text or None)
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
        self._cancel.clear()
        name = self.model_name
        if not self._conversation_open:
            self._emit(ConversationStarted(self.conversation_id, name))
            self._conversation_open = True
        request_id = self._request_id = new_id()
        self._emit(RequestStarted(request_id, self.conversation_id, prompt, name))
        result = AgentResult(
            request_id,
            "",
            model=name,
            conversation_id=self.conversation_id,
            engine=self.proposer.engine_name,
            confidence_threshold=self.settings.confidence_threshold,
        )
        meter = select_energy_meter(self.settings)
        meter.start()
        self._request_started = started
        self._hold_local = False  # set once a local-only tool has run in this request
        self._running = True
        try:
            self._warm_prefix(request_id, result)
            self._append("user", prompt)
            self._steps(request_id, result)
        except EdgeAgentError as exc:
            result.status, result.error = "failed", str(exc)
            if not result.answer:
                result.answer, result.answer_by = f"error: {exc}", "runtime"
            result.notices.append(str(exc))
            raise
        except BaseException as exc:  # a bug or Ctrl-C: the request did not finish
            result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"[:500]
            raise
        finally:
            self._running = False
            self._cancel.clear()
            energy = meter.stop()
            result.energy_j, result.energy_source = energy.joules, energy.source
            result.energy_estimated = energy.estimated
            # the user's time in confirmation prompts is theirs, not the request's latency
            result.latency_s = max(0.0, time.perf_counter() - started - result.wait_s)
            self._emit(TurnDone(request_id, result.answer, result.calls, result.usage, result))
        return result

    def _warm_prefix(self, request_id: str, result: AgentResult) -> None:
        """Restore or build the system prompt's KV state once per process (never fatal)."""
        if self._warmed or not len(self.registry):
            return
        self._warmed = True
        try:
            warm = self.proposer.warm_prefix()
            self.prefix_source = warm.source
            # built now, in this request: those prompt tokens were computed, not reused
            self._built_prefix_tokens = warm.prefix_tokens if warm.source == "cold" else 0
        except (OSError, EdgeAgentError) as exc:  # a disk or cache problem is not fatal
            self.prefix_source = "unavailable"
            notice = f"prefix cache unavailable ({type(exc).__name__}: {exc}); continuing cold"
            result.notices.append(notice)
            self._emit(Notice(request_id, notice, "warning"))

    def _steps(self, request_id: str, result: AgentResult) -> None:
        mode, succeeded, failed = "auto", set(), set()
        self._used_tools: set[str] = set()
        self._groundings, self._outputs, self._failures = [], [], []
        self._sources: list[tuple[str, str]] = []  # (label, text) of read results, to cite
        for step in range(1, self.settings.max_steps + 1):
            result.steps = step
            proposal = self.proposer.propose(
                self.history,
                mode=mode,
                context=self.context,
                on_text=lambda text: self._emit(TokenDelta(request_id, text)),
                first_step=step == 1,
                exclude=self._used_tools,
            )
            if step == 1:
                # time to first token is from the request to the first token the user could
                # see: loading or building the prompt cache is part of it
                before = time.perf_counter() - self._request_started - proposal.usage.total_s
                proposal.usage.ttft_s += max(0.0, before)
                built, self._built_prefix_tokens = self._built_prefix_tokens, 0
                proposal.usage.cached_prompt_tokens = max(
                    0, proposal.usage.cached_prompt_tokens - built
                )
            result.usage.add(proposal.usage)
            if proposal.dropped_turns:
                # the oldest exchanges no longer fit the context: they leave the working
                # history (they stay in the database), and the user is told
                del self.history[: proposal.dropped_turns]
                notice = (
                    f"left out the {proposal.dropped_turns} oldest turns of this conversation "
                    "to fit the model's context"
                )
                result.notices.append(notice)
                self._emit(Notice(request_id, notice))
            if proposal.duplicates_dropped:
                notice = f"dropped {proposal.duplicates_dropped} repeated identical call(s)"
                result.notices.append(notice)
                self._emit(Notice(request_id, notice))
            for call, validation in zip(proposal.calls, proposal.validations, strict=True):
                self._emit(CallProposed(request_id, call))
                self._emit(_checked(request_id, call, validation))
            decision, proposal, notice = self._route(request_id, proposal)
            result.route = decision
            if notice:
                result.notices.append(notice)
            if result.confidence is None or proposal.confidence < result.confidence:
                result.confidence = proposal.confidence
            if proposal.answer is not None:
                remote = decision.route == "remote"
                result.answer = self._final_answer(request_id, proposal, result, remote)
                self._append("assistant", result.answer, hide=None if remote else False)
                return
            valid = [
                c for c, v in zip(proposal.calls, proposal.validations, strict=True) if v.valid
            ]
            fresh = [c for c in valid if _signature(c) not in succeeded | failed]
            if valid and not fresh:
                # the same call again: a success is not run twice, a refusal or failure is not
                # retried as is (recorded as skipped); the model answers from what it has
                for call in valid:
                    call.status, call.error = "skipped", "already tried with these arguments"
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
                    self._emit(Notice(request_id, notice))
                    mode = "none"
                    continue
                result.answer = f"I could not make a valid tool call: {reason}"
                result.answer_by = "runtime"
                self._append("assistant", result.answer)
                return
            if not fresh:
                notice = "repeated call not run; asking for the answer"
                result.notices.append(notice)
                self._emit(Notice(request_id, notice))
                mode = "none"
                continue
            results = self.executor.run_many(fresh, validated=True)
            self._feed_back(request_id, proposal, fresh, results, result)
            for call, res in zip(fresh, results, strict=True):
                (succeeded if res.ok else failed).add(_signature(call))
            # another call only when the request asks in words for a tool in view that has not
            # run yet (proposer.follow_up_evidence); otherwise the model answers from the results
            self._used_tools |= {c.name for c in fresh}
            asked = self.proposer.follow_up_evidence(self._used_tools)
            mode = "auto" if asked and self.settings.follow_up_calls else "none"
        if not result.answer:
            from edgeagent.agent.answer import fallback_answer

            result.answer, result.answer_by = fallback_answer(result.results), "runtime"
        notice = f"stopped after {self.settings.max_steps} steps"
        result.notices.append(notice)
        self._emit(Notice(request_id, notice, "warning"))

    def _feed_back(self, request_id, proposal, calls, results, result: AgentResult) -> None:
        """Append the calls and their results (as delimited data) to the conversation.

        Calls to local-only tools and their results are marked hidden from the remote; a call
        entry mixing both kinds is sent to the remote with the remote-visible calls only.
        """
        local = {c.id for c in calls if self.registry.get(c.name).local_only}
        visible = [c for c in calls if c.id not in local]
        call_text = _calls_text(calls)
        extra = {"remote_content": _calls_text(visible)} if local and visible else {}
        self._append("assistant", call_text, hide=bool(local) and not visible, **extra)
        for call, res in zip(calls, results, strict=True):
            call.status = res.status
            result.results.append(res)
            result.wait_s += res.wait_s
            grounding = self.registry.get(call.name).grounding if res.ok else None
            found = grounding(call.arguments, res.output) if grounding else None
            if found:
                self._groundings.append((*found, call.name))
            if res.ok:
                self._outputs.append((call.name, res.output))
                if self.registry.get(call.name).cite:
                    label = str(call.arguments.get("path") or call.name)
                    self._sources.append((label, res.output))
            elif res.status in ("declined", "error", "timeout", "not_executed"):
                self._failures.append((call.name, res.error or res.status))
            self._emit(CallExecuted(request_id, call, res))
            body = res.output if res.ok else (res.error or res.status)
            message = tool_result_message(call.name, call.id, body, res.ok)
            self._append("tool", message, hide=call.id in local, name=call.name, call_id=call.id)
            if call.id in local:
                self._hold_local = True

    def _final_answer(
        self, request_id: str, proposal: Proposal, result: AgentResult, remote: bool
    ) -> str:
        """The answer as shown: no leaked markup, grounded in value-tool results, honest about
        where the decode stopped; every repair is a notice."""
        from edgeagent.agent.answer import (
            clean_answer,
            ground_answer,
            ground_in_results,
            not_done_lines,
        )

        template = self.model.template
        result.finish_reason = "stop" if remote else proposal.finish_reason
        cleaned = clean_answer(
            proposal.answer or "",
            finish_reason=result.finish_reason,
            settings=self.settings,
            extra_markers=() if remote else (template.eos_token, template.bos_token),
            system_prompt=self.proposer.system,
        )
        grounded = ground_answer(cleaned.text, self._groundings)
        if not grounded.notices:
            called = [self.registry.get(n) for n, _ in self._outputs if n in self.registry]
            ignore = {t.name for t in self.registry} | {
                w for t in called for w in t.description.lower().split()
            }
            grounded = ground_in_results(
                grounded.text, self._outputs, self.proposer.request_text, ignore
            )
        text = grounded.text
        if remote:
            result.answer_by = "remote"
        elif grounded.notices:  # the model's words were replaced by the results themselves
            result.answer_by = "runtime"
        if not grounded.notices and self._sources and self.settings.cite_sources:
            from edgeagent.agent.answer import cite_lines

            names = {t.name for t in self.registry}
            text = cite_lines(text, self._sources, self.proposer.request_text, names)
        if self._failures and "Not done:" not in text:
            text = f"{text}\n\n{not_done_lines(self._failures)}"
        for notice in (*cleaned.notices, *grounded.notices):
            result.notices.append(notice)
            self._emit(Notice(request_id, notice, "warning"))
        return text

    # ---- history -------------------------------------------------------------------------

    def _append(self, role: str, content: str, hide: bool | None = False, **extra) -> None:
        """Add a turn to the history (and, as an event, to the conversation's record).

        ``hide=True`` keeps it from the remote; ``False`` hides it only if a local-only tool
        already ran in this request (the local model has seen that data); ``None`` never hides
        (the remote's own words). ``remote_content`` in ``extra`` is what the remote sees; ``name``
        and ``call_id`` mark a tool result.
        """
        hidden = bool(hide or (hide is False and self._hold_local))
        message = Message(
            role,  # type: ignore[arg-type]
            content,
            name=extra.get("name"),
            call_id=extra.get("call_id"),
            hidden=hidden,
            remote_content=None if hidden else extra.get("remote_content"),
        )
        self.history.append(message)
        self._emit(
            MessageAdded(
                self._request_id,
                self.conversation_id,
                role,
                content,
                message.name,
                message.call_id,
            )
        )

    def _record_calls(self, request_id: str, proposal: Proposal) -> None:
        checks = tuple(
            _checked(request_id, call, validation)
            for call, validation in zip(proposal.calls, proposal.validations, strict=True)
        )
        self._emit(CallsChosen(request_id, checks))

    def close(self) -> None:
        """Close the router's client and the store (the model stays loaded for its owner)."""
        self.router.close()
        if self.store:
            self.store.close()


def make_agent(
    settings: Settings | None = None,
    *,
    model=None,
    confirm: Confirm | None = None,
    on_event: EventSink | None = None,
    **options,
) -> Agent:
    """The one way the CLI, the app and the benchmarks build an agent session.

    ``model`` is a loaded ``Model``, a catalog id or a GGUF path (None: ``settings.model``);
    ``confirm`` answers side-effecting calls; ``on_event`` receives every event. ``options``
    are ``Agent``'s other keywords (tools, tools_files, auto_approve, store, engine,
    remote_client).
    """
    return Agent(settings, model=model, confirm=confirm, on_event=on_event, **options)


def _checked(request_id: str, call: ToolCall, validation) -> CallValidated:
    """The validation of ``call`` as an event."""
    return CallValidated(
        request_id,
        call,
        validation.valid,
        validation.error,
        schema_valid=validation.schema_valid,
        semantic_valid=validation.semantic_valid,
        stage=validation.stage,
    )


def _signature(call: ToolCall) -> str:
    """A call's identity for "already ran": its tool and its normalized arguments."""
    return json.dumps([call.name, call.arguments], sort_keys=True, ensure_ascii=False)


def _calls_text(calls: Sequence[ToolCall]) -> str:
    """The calls as the assistant turn that made them (``prompt.calls_text``)."""
    return calls_text([(c.name, c.arguments) for c in calls])


__all__ = ["Agent", "AgentResult", "make_agent", "propose_calls"]
