"""The terminal app: a conversation log, an input, a status bar; the agent runs in a thread.

The model never runs on the UI thread. ``agent.run`` runs in a thread worker; each agent event
comes back through ``call_from_thread`` and is posted to the conversation log as an
``EdgeAgentApp.AgentEvent`` message. Side-effecting calls are confirmed in a modal: the
executor's ``confirm`` callback (on the worker thread) pushes ``ConfirmCall`` on the UI thread
and waits for the answer; escape, ``n`` or quitting deny.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Footer, Header, Input

from edgeagent.config import Settings
from edgeagent.errors import EdgeAgentError
from edgeagent.events import Event, TokenDelta, ignore
from edgeagent.ui.screens.confirm import ConfirmCall
from edgeagent.ui.widgets.conversation import ConversationLog
from edgeagent.ui.widgets.status import StatusBar, energy_label

if TYPE_CHECKING:
    from edgeagent.agent.loop import Agent, AgentResult

logger = logging.getLogger("edgeagent.ui")

CONFIRM_POLL_S = 0.2


class AppClosing(EdgeAgentError):
    """Raised inside the agent's thread to stop a request when the app quits."""


def model_label(model: str) -> str:
    """A catalog id as is; a path to a GGUF file by its file name."""
    return Path(model).name if model.endswith(".gguf") or "/" in model else model


class EdgeAgentApp(App[None]):
    """edgeagent's terminal app. Build it with ``make_app``; ``agent`` is optional.

    Without an agent the app loads ``settings.model`` in a thread worker at mount and builds
    ``Agent(settings, model=..., confirm=self.confirm_call)``. A given agent is used as is,
    except that its events are also sent to the app and, if it has no ``confirm`` callback
    and does not pre-approve, the app's modal is installed as its ``confirm``.
    """

    CSS_PATH = "app.tcss"
    TITLE = "edgeagent"
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("ctrl+n", "toggle_network", "Network on/off"),
        Binding("ctrl+l", "clear", "Clear"),
    ]

    class AgentEvent(Message):
        """One edgeagent event, carried from the agent's worker thread to the log."""

        def __init__(self, event: Event) -> None:
            super().__init__()
            self.event = event

    class TurnFinished(Message):
        """A request ended: its result, or the error (text) that stopped it."""

        def __init__(self, result: AgentResult | None, error: str | None) -> None:
            super().__init__()
            self.result = result
            self.error = error

    def __init__(self, settings: Settings, agent: Agent | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.agent: Agent | None = agent
        self.owns_agent = agent is None
        self.busy = False
        self.turns = 0
        self.last_result: AgentResult | None = None
        self.last_error: str | None = None
        self._forward: Callable[[Event], None] | None = None
        self._quitting = threading.Event()
        self._pending: set[threading.Event] = set()
        self._pending_lock = threading.Lock()
        self._ui_thread: int | None = None
        self._log: ConversationLog | None = None

    # ---- layout --------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="◆")
        yield ConversationLog(id="log")
        yield Input(placeholder="Ask something, Enter to send", id="prompt")
        yield StatusBar(id="status")
        yield Footer()

    @property
    def conversation(self) -> ConversationLog:
        return self.query_one("#log", ConversationLog)

    @property
    def status_bar(self) -> StatusBar:
        return self.query_one("#status", StatusBar)

    def on_mount(self) -> None:
        self._ui_thread = threading.get_ident()
        self._log = self.conversation
        self.query_one("#prompt", Input).focus()
        if self.agent is not None:
            self._attach(self.agent)
            self._ready_notice(self.agent)
            return
        name = model_label(self.settings.model)
        self.status_bar.model_name = name
        self.status_bar.state = "loading model"
        self._show_network(self.settings)
        self.conversation.add_notice(f"loading model {name} ...")
        self.busy = True
        self._load_agent()

    # ---- thread plumbing -----------------------------------------------------------------

    def _from_thread(self, callback: Callable[..., Any], *args: Any) -> bool:
        """Run ``callback`` on the UI thread and wait; False if the app is gone or going."""
        if self._quitting.is_set():
            return False
        if threading.get_ident() == self._ui_thread:
            callback(*args)
            return True
        try:
            self.call_from_thread(callback, *args)
        except RuntimeError:  # the app is not running (any more)
            return False
        return True

    def _emit(self, event: Event) -> None:
        """The agent's event sink (its worker thread): forward, then post to the log."""
        if self._forward is not None:
            try:
                self._forward(event)
            except Exception:  # noqa: BLE001 - another sink must not break the UI
                logger.exception("event sink failed")
        if self._quitting.is_set():
            raise AppClosing("the app is closing", "the request was stopped")
        if isinstance(event, TokenDelta) and threading.get_ident() != self._ui_thread:
            # Streaming must not wait for a screen refresh per token: post_message is
            # thread-safe and keeps the order with the call_from_thread deliveries below.
            self._deliver(event)
        elif not self._from_thread(self._deliver, event) and self._quitting.is_set():
            raise AppClosing("the app is closing", "the request was stopped")

    def _deliver(self, event: Event) -> None:
        """Post one event to the log (thread-safe: the widget is looked up at mount)."""
        if self._log is not None:
            self._log.post_message(self.AgentEvent(event))

    def confirm_call(self, call: Any, tool: Any) -> bool:
        """Ask the user whether to run ``call`` (from a worker thread; blocks until answered).

        Returns True only if the user chose Run; escape, ``n``, a closing app or being
        called on the UI thread (which must never block) all mean no.
        """
        if threading.get_ident() == self._ui_thread:
            logger.warning("confirm_call on the UI thread; declining %s", call.name)
            return False
        answered = threading.Event()
        box = {"run": False}

        def done(run: bool | None) -> None:
            box["run"] = bool(run)
            answered.set()

        with self._pending_lock:
            self._pending.add(answered)
        try:
            if not self._from_thread(self._push_confirm, call, tool, done):
                return False
            while not answered.wait(CONFIRM_POLL_S):
                if self._quitting.is_set():
                    return False
            return box["run"]
        finally:
            with self._pending_lock:
                self._pending.discard(answered)

    def _push_confirm(self, call: Any, tool: Any, done: Callable[[bool | None], None]) -> None:
        self.push_screen(ConfirmCall(call, tool), done)

    # ---- agent lifecycle -----------------------------------------------------------------

    @work(thread=True, group="agent", exit_on_error=False)
    def _load_agent(self) -> None:
        """Load the model and build the agent (thread worker)."""
        from edgeagent.agent.loop import Agent
        from edgeagent.runtime.session import load_local_model

        try:
            model = load_local_model(self.settings)
            agent = Agent(
                self.settings, model=model, confirm=self.confirm_call, on_event=self._emit
            )
        except EdgeAgentError as exc:
            self._from_thread(self._load_failed, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - shown in the log, not a crash
            logger.exception("model load failed")
            self._from_thread(self._load_failed, f"{type(exc).__name__}: {exc}")
            return
        stats = self._stats_of(agent)
        if not self._from_thread(self._agent_ready, agent, stats):
            agent.close()

    def _load_failed(self, error: str) -> None:
        self.busy = False
        self.status_bar.state = "no model"
        self.conversation.add_notice(f"could not load the model: {error}", "error")

    def _agent_ready(self, agent: Agent, stats: dict | None) -> None:
        self.agent = agent
        self.busy = False
        self._attach(agent, stats)
        self._ready_notice(agent)

    def _attach(self, agent: Agent, stats: dict | None = None) -> None:
        """Route the agent's events and confirmations through the app; show its state."""
        if agent.on_event != self._emit:  # bound methods: compare with ==
            self._forward = None if agent.on_event is ignore else agent.on_event
            agent.on_event = self._emit
        executor = agent.executor
        if executor.confirm is None and not executor.policy.auto_approve:
            executor.confirm = self.confirm_call
        bar = self.status_bar
        bar.model_name = agent.model.path.name
        bar.state = "ready"
        self.sub_title = agent.model.path.name
        self._show_network(agent.settings)
        if stats is not None:
            self._show_stats(stats)
        elif agent.store is not None:
            self._refresh_stats()

    def _ready_notice(self, agent: Agent) -> None:
        from edgeagent.runtime.session import base_model_warning

        tools = ", ".join(agent.registry.names()) or "none"
        self.conversation.add_notice(
            f"ready: {agent.model.path.name}; tools: {tools}. "
            "Write and network calls ask first; click a call card for details."
        )
        warning = base_model_warning(agent.model.path)
        if warning:
            self.conversation.add_notice(warning, "warning")

    def _show_network(self, settings: Settings) -> None:
        bar = self.status_bar
        bar.network = bool(settings.allow_network and not settings.offline)
        bar.remote = bool((settings.remote_url or "").strip())

    # ---- turns ---------------------------------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        prompt = event.value.strip()
        if not prompt:
            return
        if self.agent is None:
            message = "the model is still loading" if self.busy else "no model is loaded"
            self.notify(message, severity="warning")
            return
        if self.busy:
            self.notify("wait for the current request to finish", severity="warning")
            return
        event.input.value = ""
        self.conversation.add_user(prompt)
        self.busy = True
        self.status_bar.state = "thinking"
        self._run_turn(self.agent, prompt)

    @work(thread=True, group="agent", exit_on_error=False)
    def _run_turn(self, agent: Agent, prompt: str) -> None:
        """``agent.run(prompt)`` off the UI thread; errors become a notice, not a crash."""
        result, error = None, None
        try:
            result = agent.run(prompt)
        except AppClosing:
            if self.owns_agent:
                agent.close()
            return
        except EdgeAgentError as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - shown in the log, not a crash
            logger.exception("request failed")
            error = f"internal error: {type(exc).__name__}: {exc}"
        stats = self._stats_of(agent)
        self._from_thread(self._turn_finished, result, error, stats)

    def _turn_finished(self, result: AgentResult | None, error: str | None, stats) -> None:
        self.conversation.post_message(self.TurnFinished(result, error))
        self.last_result, self.last_error = result, error
        self.turns += 1
        self.busy = False
        bar = self.status_bar
        bar.state = "ready" if error is None else "error"
        if result is not None:
            bar.energy = energy_label(
                result.energy_j, result.energy_source, result.energy_estimated
            )
        if stats is not None:
            self._show_stats(stats)

    @staticmethod
    def _stats_of(agent: Agent) -> dict | None:
        """The store's production metrics, or None without a store (or if it fails)."""
        if agent.store is None:
            return None
        from edgeagent.metrics.stats import compute_stats

        try:
            return compute_stats(agent.store)
        except EdgeAgentError as exc:
            logger.warning("stats unavailable: %s", exc)
            return None

    @work(thread=True, group="stats", exit_on_error=False)
    def _refresh_stats(self) -> None:
        agent = self.agent
        stats = self._stats_of(agent) if agent is not None else None
        if stats is not None:
            self._from_thread(self._show_stats, stats)

    def _show_stats(self, stats: dict) -> None:
        self.status_bar.p50_s = stats.get("latency_p50_s")

    # ---- actions -------------------------------------------------------------------------

    def action_toggle_network(self) -> None:
        """Rebuild the agent with ``allow_network`` flipped (the model stays loaded)."""
        if self.agent is None or self.busy:
            self.notify("wait until the model is ready and idle", severity="warning")
            return
        current = self.agent.settings
        on = not (current.allow_network and not current.offline)
        changes: dict[str, Any] = {"allow_network": on}
        if on:
            changes["offline"] = False
        self.busy = True
        self.status_bar.state = "switching network"
        self._rebuild_agent(self.agent, current.replace(**changes))

    @work(thread=True, group="agent", exit_on_error=False)
    def _rebuild_agent(self, old: Agent, settings: Settings) -> None:
        """A new Agent on the same model, tools, store and history, with new settings."""
        from edgeagent.agent.loop import Agent

        engine = "llama.cpp" if old.proposer.engine_name.startswith("llama.cpp") else "llguidance"
        try:
            new = Agent(
                settings,
                model=old.model,
                tools=None if self.owns_agent else list(old.registry),
                confirm=old.executor.confirm,
                auto_approve=old.executor.policy.auto_approve,
                store=old.store or False,
                on_event=self._emit,
                engine=engine,
                remote_client=old.remote_client,
            )
        except EdgeAgentError as exc:
            self._from_thread(self._rebuild_failed, str(exc))
            return
        new.history = old.history
        new.conversation_id = old.conversation_id
        self._from_thread(self._agent_rebuilt, new)

    def _rebuild_failed(self, error: str) -> None:
        self.busy = False
        self.status_bar.state = "ready"
        self.conversation.add_notice(f"could not switch the network: {error}", "error")

    def _agent_rebuilt(self, agent: Agent) -> None:
        self.agent = agent
        self.settings = agent.settings
        self.busy = False
        self.status_bar.state = "ready"
        self._show_network(agent.settings)
        if agent.context.allow_network:
            where = agent.settings.remote_url or "no remote URL set (EDGEAGENT_REMOTE_URL)"
            text = f"network on: low-confidence calls may go to the remote model ({where})"
        else:
            text = "network off: everything stays on this machine"
        self.conversation.add_notice(text, "warning" if agent.context.allow_network else "info")

    def action_clear(self) -> None:
        """Clear the log and start a new conversation (the model forgets the history)."""
        if self.busy:
            self.notify("wait for the current request to finish", severity="warning")
            return
        self.conversation.clear()
        agent = self.agent
        if agent is not None:
            agent.history = []
            if agent.store is not None:
                try:
                    agent.conversation_id = agent.store.start_conversation(
                        "", agent.model.path.name
                    )
                except EdgeAgentError as exc:
                    self.conversation.add_notice(str(exc), "error")
        self.conversation.add_notice("cleared: new conversation")

    async def action_quit(self) -> None:
        self._release()
        self.exit()

    def _release(self) -> None:
        """Deny every pending confirmation and make the agent's next event stop its run."""
        self._quitting.set()
        with self._pending_lock:
            for answered in self._pending:
                answered.set()

    def on_unmount(self) -> None:
        self._release()
        if self.owns_agent and self.agent is not None and not self.busy:
            self.agent.close()


def make_app(settings: Settings, agent: Agent | None = None) -> EdgeAgentApp:
    """The app, as the CLI and the tests build it."""
    return EdgeAgentApp(settings, agent=agent)


def run_app(settings: Settings) -> None:
    """Open the terminal app (``edgeagent`` / ``edgeagent chat``)."""
    make_app(settings).run()


__all__ = ["EdgeAgentApp", "make_app", "run_app"]
