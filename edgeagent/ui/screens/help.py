"""The help screen (F1, or ? outside the input): the app's keys and what the cards say."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

CARD_HELP = (
    "A card per tool call: its arguments; one status (valid, ran, declined, invalid, error); "
    "how sure the model was, in words and as a number (tool choice: how likely it was to call "
    "this tool at all; weakest argument: its least likely argument token); where it ran "
    "(local, remote, local after the remote failed) and why; how long the tool itself took "
    "(not your time in the confirmation). Enter or a click shows the details."
)


# the app's keys as the help screen lists them, in this order
APP_KEYS = [
    ("Enter", "send what you typed"),
    ("Escape", "stop the running request (the decode stops within one token)"),
    ("Tab / Shift+Tab", "move between the input and the call cards"),
    ("PageUp / PageDown", "scroll the conversation"),
    ("Enter on a card", "show or fold its details"),
    ("Ctrl+N", "network on/off (remote model, network tools)"),
    ("Ctrl+L", "new conversation (clears the log and the model's history)"),
    ("Ctrl+B", "past conversations: Enter opens, r renames, d deletes, e exports"),
    ("Ctrl+O", "switch model (installed, or pulled with a progress bar; the chat goes on)"),
    ("Ctrl+S", "settings: threshold, folders, remote endpoint and key, call decision"),
    ("Ctrl+Y", "copy the last answer"),
    ("F2", "session panel: latency and energy per request, tokens/s, CPU, RAM, battery"),
    ("Ctrl+P", "command palette (every command, and Screenshot)"),
    ("F1 or ?", "this help (? outside the input)"),
    ("Ctrl+Q", "quit"),
    ("y / n in a confirmation", "run / deny the side-effecting call (Escape denies)"),
]


def keys_table(bindings: list[tuple[str, str]]) -> Table:
    """Key and what it does, one row each."""
    table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for key, description in bindings:
        table.add_row(key, description)
    return table


class HelpScreen(ModalScreen[None]):
    """The app's bindings and a note on reading the cards; Escape, F1, ? or q close it."""

    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("f1", "close", "Close", show=False),
        Binding("question_mark", "close", "Close", show=False),
        Binding("q", "close", "Close", show=False),
    ]

    def __init__(self, bindings: list[tuple[str, str]]) -> None:
        super().__init__()
        self.bindings = bindings

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box"):
            yield Static(Text("edgeagent: keys", style="bold"), id="help-title")
            with VerticalScroll(id="help-body"):
                yield Static(keys_table(self.bindings), id="help-keys")
                yield Static(Text(CARD_HELP, style="dim"), id="help-cards")
            yield Static(Text("Escape closes this help.", style="italic dim"))

    def action_close(self) -> None:
        self.dismiss(None)
