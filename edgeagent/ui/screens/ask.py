"""Small modals: ask for a line of text (rename), or yes/no before something irreversible."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static


class AskText(ModalScreen[str | None]):
    """One line of text; Enter gives it, Escape gives None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, value: str = "") -> None:
        super().__init__()
        self.question = question
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical(classes="ask-box"):
            yield Static(Text(self.question, style="bold"))
            yield Input(value=self.value, id="ask-input")

    def on_mount(self) -> None:
        self.query_one("#ask-input", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class AskYesNo(ModalScreen[bool]):
    """Yes or no, no by default: ``y`` confirms; ``n``, Escape or Enter on No decline."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="ask-box"):
            yield Static(Text(self.question, style="bold"))
            with Horizontal(classes="ask-buttons"):
                yield Button("Yes (y)", id="ask-yes", variant="error")
                yield Button("No (n)", id="ask-no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#ask-no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "ask-yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(bool(yes))
