"""The confirmation modal: run this side-effecting tool call, yes or no (no by default)."""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

ARGUMENTS_CHARS = 4000


class ConfirmCall(ModalScreen[bool]):
    """Asks before a write or network call. ``y`` runs it; ``n``, escape or Enter on the
    focused Deny button declines. Dismisses with True (run) or False (deny)."""

    BINDINGS = [
        Binding("y", "answer(True)", "Run"),
        Binding("n", "answer(False)", "Deny"),
        Binding("escape", "answer(False)", "Deny"),
    ]

    def __init__(self, call: Any, tool: Any) -> None:
        super().__init__()
        self.call = call
        self.tool = tool

    def compose(self) -> ComposeResult:
        risk = getattr(self.tool, "risk", "write")
        arguments = json.dumps(self.call.arguments, ensure_ascii=False, indent=2, default=str)
        if len(arguments) > ARGUMENTS_CHARS:
            arguments = arguments[:ARGUMENTS_CHARS] + "\n[... truncated]"
        with Vertical(id="confirm-box"):
            yield Static(
                Text.assemble("Run this ", (risk, "bold yellow"), " tool call?"),
                id="confirm-title",
            )
            yield Static(Text(self.call.name, style="bold cyan"), id="confirm-name")
            description = (getattr(self.tool, "description", "") or "").strip()
            if description:
                yield Static(Text(description.splitlines()[0], style="dim"), id="confirm-desc")
            with VerticalScroll(id="confirm-args"):
                yield Static(Text(arguments))
            with Horizontal(id="confirm-buttons"):
                yield Button("Run (y)", id="confirm-yes", variant="warning")
                yield Button("Deny (n)", id="confirm-no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#confirm-no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm-yes")

    def action_answer(self, run: bool) -> None:
        self.dismiss(bool(run))
