"""The model picker (Ctrl+O, and the first-run screen): installed models and the catalog's
models that fit this machine, with sizes, sources and why; Enter picks one, pulling it first
(progress bar, Escape cancels) when it is not installed. Offline, only installed models can
be picked, and the others say why.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, ProgressBar, Static
from textual.widgets.option_list import Option

from edgeagent.errors import EdgeAgentError

FIRST_RUN = (
    "No model is set up yet. These fit this machine, best first (RAM, cores, tool calling); "
    "Enter pulls and uses one. The embedded default is the first (small, fast, modest)."
)


class PullCancelled(EdgeAgentError):
    """The user stopped a model download (the partial file is removed)."""


@dataclass(frozen=True)
class ModelChoice:
    """One row of the picker."""

    id: str
    label: str
    detail: str
    installed: bool
    available: bool  # can be picked now (installed, or pullable with the network allowed)
    file: str = ""


def model_choices(settings) -> list[ModelChoice]:
    """The catalog's instruct models that fit this machine (best first), then the others
    that are installed; offline, those not installed cannot be picked."""
    import psutil

    from edgeagent.cli_output import human_bytes
    from edgeagent.runtime.catalog import is_installed, load_catalog, recommend_with_reasons
    from edgeagent.runtime.threads import physical_cores

    catalog = load_catalog()
    ranked = recommend_with_reasons(psutil.virtual_memory().total, physical_cores(), catalog)
    seen = {entry.id for entry, _ in ranked}
    rows = list(ranked) + [(e, "installed") for e in catalog if e.id not in seen]
    choices = []
    for entry, reason in rows:
        installed = is_installed(entry, settings)
        if entry.id not in {e.id for e, _ in ranked} and not installed:
            continue
        where = "installed" if installed else f"{human_bytes(entry.size_bytes)} from {entry.source}"
        if not installed and settings.offline:
            where += " (offline: cannot be pulled now; run without --offline to get it)"
        detail = f"{where} · {reason}" + (f" · {entry.good_for}" if entry.good_for else "")
        available = installed or not settings.offline
        label = f"{entry.id}{'  (default)' if entry.default else ''}"
        choices.append(ModelChoice(entry.id, label, detail, installed, available, entry.file))
    return choices


class ModelPicker(ModalScreen[str | None]):
    """Dismisses with the picked (and present) model's id, or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel / stop the pull")]

    def __init__(self, settings, *, first_run: bool = False, current: str = "") -> None:
        super().__init__()
        self.settings = settings
        self.first_run = first_run
        self.current = current
        self.choices: list[ModelChoice] = []
        self._stop = threading.Event()
        self.pulling: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="models-box"):
            title = "Welcome to edgeagent" if self.first_run else "Switch model"
            yield Static(Text(title, style="bold"), id="models-title")
            if self.first_run:
                yield Static(Text(FIRST_RUN, style="dim"), id="models-intro")
            yield OptionList(id="models-list")
            yield ProgressBar(id="models-progress", show_eta=True)
            yield Static("", id="models-status")

    def on_mount(self) -> None:
        self.query_one("#models-progress").display = False
        listing = self.query_one("#models-list", OptionList)
        try:
            self.choices = model_choices(self.settings)
        except EdgeAgentError as exc:
            self._say(f"the catalog cannot be read: {exc}", "red")
            return
        for choice in self.choices:
            label = Text(choice.label, style="bold" if choice.available else "dim")
            if self.current in (choice.id, choice.file):
                label.append("  (in use)", style="green")
            label.append(f"\n  {choice.detail}", style="dim")
            listing.add_option(Option(label, id=choice.id, disabled=not choice.available))
        if not self.choices:
            self._say("no catalog model fits this machine's RAM", "red")
        listing.focus()

    def _say(self, text: str, style: str = "") -> None:
        self.query_one("#models-status", Static).update(Text(text, style=style))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if self.pulling:
            return
        choice = next(c for c in self.choices if c.id == event.option.id)
        if choice.installed:
            self.dismiss(choice.id)
            return
        self.pulling = choice.id
        self._stop.clear()
        bar = self.query_one("#models-progress", ProgressBar)
        bar.display = True
        bar.update(total=None, progress=0)
        self._say(f"pulling {choice.id} (Escape stops)")
        self._pull(choice.id)

    @work(thread=True, exclusive=True, group="pull", exit_on_error=False)
    def _pull(self, model_id: str) -> None:
        """Download and verify in a thread; progress and the end come back to the screen."""
        from edgeagent.runtime.catalog import load_catalog
        from edgeagent.runtime.download import pull_model

        def progress(done: int, total: int | None) -> None:
            if self._stop.is_set():
                raise PullCancelled("the download was stopped", "pick the model again to retry")
            self.app.call_from_thread(self._progress, done, total)

        try:
            path = pull_model(load_catalog().get(model_id), self.settings, progress)
        except EdgeAgentError as exc:
            self.app.call_from_thread(self._pull_failed, str(exc))
            return
        self.app.call_from_thread(self._pulled, model_id, path)

    def _progress(self, done: int, total: int | None) -> None:
        self.query_one("#models-progress", ProgressBar).update(total=total, progress=done)

    def _pull_failed(self, error: str) -> None:
        self.pulling = None
        self.query_one("#models-progress").display = False
        self._say(f"not pulled: {error}", "red")

    def _pulled(self, model_id: str, path: Path) -> None:
        self.pulling = None
        self.dismiss(model_id)

    def action_cancel(self) -> None:
        if self.pulling:
            self._stop.set()
            self._say("stopping the download ...", "yellow")
            return
        self.dismiss(None)


# ---- switching the app's model (Ctrl+O) ------------------------------------------------------


def switch_model(app) -> None:
    """Open the picker; the picked model loads in a thread worker and replaces the session's
    model (``Agent.set_model``): history and conversation stay."""
    if app.agent is None or app.busy:
        app.notify("wait until the model is ready and idle", severity="warning")
        return

    def picked(model_id: str | None) -> None:
        app.focus_prompt()
        if not model_id or app.agent is None:
            return
        app.busy = True
        app.status_bar.state = f"loading {model_id}"
        app.conversation.add_notice(f"loading model {model_id} ...")
        agent = app.agent
        app.run_worker(
            lambda: _load_into(app, agent, model_id),
            thread=True,
            group="agent",
            exit_on_error=False,
        )

    app.push_screen(ModelPicker(app.settings, current=app.agent.model_name), picked)


def _load_into(app, agent, model_id: str) -> None:
    """Load ``model_id`` and hand it to ``agent`` (thread worker); the app is told either way."""
    from edgeagent.runtime.session import load_model

    old = agent.model
    try:
        agent.set_model(load_model(model_id, app.settings))
    except EdgeAgentError as exc:
        app.call_from_thread(_switch_failed, app, str(exc))
        return
    if app.owns_model and old is not agent.model:
        old.close()
    app.owns_model = True
    app.call_from_thread(_switched, app, agent)


def _switch_failed(app, error: str) -> None:
    app.busy = False
    app.status_bar.state = "ready"
    app.conversation.add_notice(f"could not switch the model: {error}", "error")


def _switched(app, agent) -> None:
    app.busy = False
    app.show_agent(agent)
    app.conversation.add_notice(f"now using {agent.model_name}; the conversation goes on")
    for warning in agent.model_warnings():
        app.conversation.add_notice(warning, "warning")
