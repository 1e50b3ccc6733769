"""The terminal app: a conversation log, an input, a status bar; the agent runs in a thread.

The model never runs on the UI thread. The app builds its agent session once with
``make_agent(settings, model=..., confirm=self.confirm_call, on_event=self._emit)`` and drives
it only through its methods (``run``, ``new_conversation``, ``set_network``). ``agent.run`` runs
in a thread worker; each agent event comes back through ``call_from_thread`` and is posted to the
conversation log as an ``EdgeAgentApp.AgentEvent`` message; ``TurnDone`` carries the whole result
(route, latency, energy). Side-effecting calls are confirmed in a modal: ``confirm_call`` (on the
worker thread) pushes ``ConfirmCall`` on the UI thread and waits for the answer; escape, ``n`` or
quitting deny.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Footer, Header, Input

from edgeagent.config import Settings
from edgeagent.errors import EdgeAgentError
from edgeagent.events import Event, TokenDelta, TurnDone
from edgeagent.ui.screens.confirm import ConfirmCall
from edgeagent.ui.widgets.conversation import ConversationLog
from edgeagent.ui.widgets.session import SessionPanel, point_of
from edgeagent.ui.widgets.sidebar import Sidebar
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
    """edgeagent's terminal app. Build it with ``make_app``.

    At mount a thread worker loads ``model`` (a loaded ``Model``, a catalog id or a path;
    None: ``settings.model``) and builds the agent session with the app's modal as ``confirm``
    and the app as ``on_event``; ``agent_options`` are ``make_agent``'s other keywords
    (tools, store, auto_approve, ...). ``on_event`` also receives every event.
    """

    CSS_PATH = "app.tcss"
    TITLE = "edgeagent"
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("escape", "stop", "Stop"),
        Binding("ctrl+n", "toggle_network", "Network on/off"),
        Binding("ctrl+l", "clear", "New conversation"),
        Binding("ctrl+b", "toggle_sidebar", "Conversations"),
        Binding("f2", "toggle_session", "Session"),
        Binding("ctrl+o", "switch_model", "Model"),
        Binding("ctrl+s", "settings", "Settings"),
        Binding("ctrl+y", "copy_answer", "Copy answer"),
        Binding("f1", "help", "Help"),
        Binding("pageup", "scroll_log(-1)", "Scroll up", show=False),
        Binding("pagedown", "scroll_log(1)", "Scroll down", show=False),
        Binding("question_mark", "help", "Help", show=False),
    ]

    class AgentEvent(Message):
        """One edgeagent event, carried from the agent's worker thread to the log."""

        def __init__(self, event: Event) -> None:
            super().__init__()
            self.event = event

    def __init__(
        self,
        settings: Settings,
        *,
        model: Any = None,
        agent_options: dict | None = None,
        on_event: Callable[[Event], None] | None = None,
        first_run: bool = False,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.first_run = first_run and model is None
        self.owns_model = model is None
        self.agent: Agent | None = None
        self._model = model
        self._agent_options = dict(agent_options or {})
        self.busy = False
        self.turns = 0
        self.last_result: AgentResult | None = None
        self.last_error: str | None = None
        self._forward: Callable[[Event], None] | None = on_event
        self._turn_drawn = False  # the running request's TurnDone reached the log
        self._quitting = threading.Event()
        self._pending: set[threading.Event] = set()
        self._pending_lock = threading.Lock()
        self._ui_thread: int | None = None
        self._log: ConversationLog | None = None

    # ---- layout --------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="◆")
        with Horizontal(id="main"):
            yield Sidebar(id="sidebar")
            yield ConversationLog(id="log")
        yield SessionPanel(id="session")
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
        if self.first_run:
            from edgeagent.ui.screens.models import ModelPicker

            self.status_bar.state = "pick a model"
            self.push_screen(ModelPicker(self.settings, first_run=True), self._first_model)
            return
        self._start_loading()

    def _first_model(self, model_id: str | None) -> None:
        """First run: remember the picked model in config.toml (Escape: the default)."""
        from edgeagent.config import set_config_value

        if model_id:
            try:
                set_config_value(self.settings.home, "model", model_id)
            except EdgeAgentError as exc:
                self.notify(f"not saved in config.toml: {exc}", severity="warning")
            self.settings = self.settings.replace(model=model_id)
        self.focus_prompt()
        self._start_loading()

    def _start_loading(self) -> None:
        given = self._model
        name = model_label(self.settings.model if given is None else _model_name(given))
        self.status_bar.model_name = name
        self.status_bar.state = "loading model"
        self.show_network(self.settings)
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
        if isinstance(event, TurnDone):
            self._turn_drawn = True
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
        def answered(run: bool | None) -> None:
            done(run)
            self.focus_prompt()

        self.push_screen(ConfirmCall(call, tool), answered)

    def focus_prompt(self) -> None:
        """Give the keyboard back to the input (after a modal or a card)."""
        prompts = self.query("#prompt")
        if prompts:
            prompts.first().focus()

    # ---- agent lifecycle -----------------------------------------------------------------

    @work(thread=True, group="agent", exit_on_error=False)
    def _load_agent(self) -> None:
        """Load the model and build the agent session (thread worker)."""
        from edgeagent.agent.loop import make_agent

        try:
            agent = make_agent(
                self.settings,
                model=self._model,
                confirm=self.confirm_call,
                on_event=self._emit,
                **self._agent_options,
            )
        except EdgeAgentError as exc:
            self._from_thread(self._load_failed, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - shown in the log, not a crash
            logger.exception("model load failed")
            self._from_thread(self._load_failed, f"{type(exc).__name__}: {exc}")
            return
        stats = agent.stats()
        if not self._from_thread(self._agent_ready, agent, stats):
            agent.close()

    def _load_failed(self, error: str) -> None:
        self.busy = False
        self.status_bar.state = "no model"
        self.conversation.add_notice(f"could not load the model: {error}", "error")

    def _agent_ready(self, agent: Agent, stats: dict | None) -> None:
        self.agent = agent
        self.busy = False
        self.show_agent(agent, stats)
        self._ready_notice(agent)

    def show_agent(self, agent: Agent, stats: dict | None = None) -> None:
        """Show the agent's state (model, network, stats)."""
        bar = self.status_bar
        bar.model_name = agent.model_name
        bar.state = "ready"
        self.sub_title = agent.model_name
        self.show_network(agent.settings)
        if stats is not None:
            self._show_stats(stats)

    def _ready_notice(self, agent: Agent) -> None:
        tools = ", ".join(agent.registry.names()) or "none"
        self.conversation.add_notice(
            f"ready: {agent.model_name}; tools: {tools}. "
            "Write and network calls ask first; Tab or click a call card for details; F1: keys."
        )
        for warning in agent.model_warnings():
            self.conversation.add_notice(warning, "warning")

    def show_network(self, settings: Settings) -> None:
        bar = self.status_bar
        bar.network = settings.network_allowed
        bar.remote = bool((settings.remote_url or "").strip())

    # ---- turns ---------------------------------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "prompt":
            return  # the sidebar's search box
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
        """``agent.run(prompt)`` off the UI thread; errors become a notice, not a crash.

        The log draws the turn from the events (``TurnDone`` closes it); an error that ended
        the request before its ``TurnDone`` is shown as a notice here.
        """
        self._turn_drawn = False
        result, error = None, None
        try:
            result = agent.run(prompt)
        except AppClosing:
            agent.close()
            return
        except EdgeAgentError as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - shown in the log, not a crash
            logger.exception("request failed")
            error = f"internal error: {type(exc).__name__}: {exc}"
        stats = agent.stats()
        drawn = self._turn_drawn
        self._from_thread(self._turn_finished, result, error, stats, drawn)

    def _turn_finished(
        self, result: AgentResult | None, error: str | None, stats, drawn: bool
    ) -> None:
        if not drawn:
            self.conversation.finish_turn(None, error or "the request ended without an answer")
        self.last_result, self.last_error = result, error
        self.turns += 1
        self.busy = False
        bar = self.status_bar
        bar.state = "ready" if error is None else "error"
        if result is not None:
            bar.energy = energy_label(
                result.energy_j, result.energy_source, result.energy_estimated
            )
            self.query_one(SessionPanel).add(point_of(result))
        if stats is not None:
            self._show_stats(stats)

    def _show_stats(self, stats: dict) -> None:
        self.status_bar.p50_s = stats.get("latency_p50_s")

    # ---- actions -------------------------------------------------------------------------

    def action_toggle_network(self) -> None:
        """Turn the network on or off for the next requests (the model stays loaded)."""
        if self.agent is None or self.busy:
            self.notify("wait until the model is ready and idle", severity="warning")
            return
        self.busy = True
        self.status_bar.state = "switching network"
        self._switch_network(self.agent, not self.agent.settings.network_allowed)

    @work(thread=True, group="agent", exit_on_error=False)
    def _switch_network(self, agent: Agent, on: bool) -> None:
        """``agent.set_network(on)`` off the UI thread (it rebuilds the tools and router)."""
        try:
            agent.set_network(on)
        except EdgeAgentError as exc:
            self._from_thread(self._network_failed, str(exc))
            return
        self._from_thread(self._network_switched, agent)

    def _network_failed(self, error: str) -> None:
        self.busy = False
        self.status_bar.state = "ready"
        self.conversation.add_notice(f"could not switch the network: {error}", "error")

    def _network_switched(self, agent: Agent) -> None:
        self.settings = agent.settings
        self.busy = False
        self.status_bar.state = "ready"
        self.show_network(agent.settings)
        if agent.settings.network_allowed:
            where = agent.settings.remote_url or "no remote URL set (EDGEAGENT_REMOTE_URL)"
            text = f"network on: low-confidence calls may go to the remote model ({where})"
        else:
            text = "network off: everything stays on this machine"
        self.conversation.add_notice(text, "warning" if agent.settings.network_allowed else "info")

    def action_clear(self) -> None:
        """Clear the log and start a new conversation (the model forgets the history)."""
        if self.busy:
            self.notify("wait for the current request to finish", severity="warning")
            return
        self.conversation.clear()
        if self.agent is not None:
            self.agent.new_conversation()
        self.conversation.add_notice("cleared: new conversation")

    # ---- past conversations --------------------------------------------------------------

    def action_toggle_sidebar(self) -> None:
        """Show or hide the list of past conversations."""
        sidebar = self.query_one(Sidebar)
        if sidebar.display:
            sidebar.display = False
            self.focus_prompt()
            return
        if self.agent is None or self.agent.store is None:
            self.notify("no history to list (no model loaded, or no store)", severity="warning")
            return
        sidebar.display = True
        sidebar.refresh_list()
        sidebar.query_one("#conv-list").focus()

    def open_conversation(self, conversation_id: str, title: str) -> None:
        """Resume a stored conversation: the log is redrawn and the model gets its history."""
        from edgeagent.store.conversations import conversation_record

        agent = self.agent
        try:
            record = conversation_record(agent.store, conversation_id)
            agent.resume(conversation_id)
        except EdgeAgentError as exc:
            self.conversation.add_notice(f"could not open the conversation: {exc}", "error")
            return
        self.conversation.clear()
        self.conversation.replay(record)
        count = len(record["requests"])
        self.conversation.add_notice(f"resumed “{title}” ({count} requests); go on typing")
        self.query_one(Sidebar).display = False
        self.focus_prompt()

    def action_stop(self) -> None:
        """Escape: stop the running request; when idle, back to the input."""
        if self.busy and self.agent is not None:
            self.agent.cancel()
            self.status_bar.state = "stopping"
        else:
            self.focus_prompt()

    def action_switch_model(self) -> None:
        """Pick another model; it loads in a worker and the conversation goes on."""
        from edgeagent.ui.screens.models import switch_model

        switch_model(self)

    def action_settings(self) -> None:
        """Edit the common settings; saved ones apply to the session from the next request."""
        from edgeagent.ui.screens.settings import open_settings

        open_settings(self)

    def action_export(self) -> None:
        """Export the current conversation (once it has a request) to the exports folder."""
        agent = self.agent
        if agent is None or agent.store is None or not self.turns:
            self.notify("nothing to export yet", severity="warning")
            return
        self.query_one(Sidebar).export(agent.conversation_id)

    def action_toggle_session(self) -> None:
        """Show or hide the session panel (it refreshes the machine's figures when shown)."""
        panel = self.query_one(SessionPanel)
        panel.display = not panel.display
        if panel.display:
            panel.redraw()

    def action_scroll_log(self, direction: int) -> None:
        log = self.conversation
        (log.scroll_page_down if direction > 0 else log.scroll_page_up)(animate=False)

    def action_help(self) -> None:
        from edgeagent.ui.screens.help import APP_KEYS, HelpScreen

        self.push_screen(HelpScreen(APP_KEYS), lambda _: self.focus_prompt())

    def action_copy_answer(self) -> None:
        """Copy the last answer to the clipboard (the terminal's, through OSC 52)."""
        answers = self.conversation.answers()
        if not answers:
            self.notify("no answer to copy yet", severity="warning")
            return
        self.copy_to_clipboard(answers[-1])
        self.notify("copied the last answer")

    def get_system_commands(self, screen):
        """The palette: Textual's commands and the app's own."""
        yield from super().get_system_commands(screen)
        yield SystemCommand("New conversation", "Clear the log and the history", self.action_clear)
        yield SystemCommand(
            "Network on/off", "Allow or forbid the remote model", self.action_toggle_network
        )
        yield SystemCommand("Stop", "Stop the running request", self.action_stop)
        yield SystemCommand("Copy answer", "Copy the last answer", self.action_copy_answer)
        yield SystemCommand("Help", "The app's keys", self.action_help)
        yield SystemCommand(
            "Switch model", "Installed and catalog models", self.action_switch_model
        )
        yield SystemCommand("Settings", "Threshold, folders, remote endpoint", self.action_settings)
        yield SystemCommand(
            "Export conversation", "This conversation as markdown and JSON", self.action_export
        )
        yield SystemCommand(
            "Session", "Latency and energy over this session", self.action_toggle_session
        )
        yield SystemCommand(
            "Conversations",
            "Past conversations: open, rename, delete, export",
            self.action_toggle_sidebar,
        )

    def screenshot_dir(self) -> Path:
        """Where screenshots go: ``$EDGEAGENT_HOME/screenshots`` (created), else the cwd."""
        folder = self.settings.home / "screenshots"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return Path.cwd()
        return folder

    def deliver_screenshot(self, filename=None, path=None, time_format=None):
        """Save to ``screenshot_dir()`` unless a path is given (the default, ~/Downloads, may
        not exist: "Failed to save screenshot")."""
        where = path or str(self.screenshot_dir())
        key = super().deliver_screenshot(filename, where, time_format)
        self.notify(f"screenshot saved in {where}")
        return key

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
        if self.agent is not None and not self.busy:
            self.agent.close()


def _model_name(model: Any) -> str:
    """A display name for a loaded model, an id or a path."""
    path = getattr(model, "path", None)
    return path.name if path is not None else str(model)


def make_app(
    settings: Settings,
    *,
    model: Any = None,
    agent_options: dict | None = None,
    on_event: Callable[[Event], None] | None = None,
    first_run: bool = False,
) -> EdgeAgentApp:
    """The app, as the CLI and the tests build it (see ``EdgeAgentApp``)."""
    return EdgeAgentApp(
        settings, model=model, agent_options=agent_options, on_event=on_event, first_run=first_run
    )


def run_app(settings: Settings, *, first_run: bool = False) -> None:
    """Open the terminal app (``edgeagent`` / ``edgeagent chat``)."""
    make_app(settings, first_run=first_run).run()


__all__ = ["EdgeAgentApp", "make_app", "run_app"]
