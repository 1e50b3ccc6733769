"""The settings screen (Ctrl+S): the settings a user changes most, checked field by field.

Each field is parsed and checked like config.toml would be (``config.parse_setting``); a bad
value gets its own error line and nothing is saved until every field is right. Saved values go
to ``$EDGEAGENT_HOME/config.toml`` (made owner-only when it holds the API key) and to the running
session. The API key field is masked and never shown back; it never reaches the history (the
store scrubs it from every row).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from edgeagent.errors import EdgeAgentError

KEEP_KEY = ""  # the key field starts empty: empty means "keep the key as it is"


@dataclass(frozen=True)
class Field:
    """One editable setting."""

    name: str
    label: str
    help: str
    secret: bool = False


FIELDS = (
    Field(
        "confidence_threshold",
        "Confidence threshold",
        "0 to 1: below it a call goes to the remote model (when the network is on)",
    ),
    Field(
        "allowed_roots",
        "Allowed folders",
        f"folders the tools may touch, separated by {os.pathsep!r}",
    ),
    Field("remote_url", "Remote endpoint", "an OpenAI-compatible URL (blank: none)"),
    Field("remote_model", "Remote model", "the model name the endpoint expects (blank: its own)"),
    Field(
        "remote_api_key",
        "Remote API key",
        "masked; leave empty to keep the current key, type - to remove it",
        secret=True,
    ),
    Field("call_bias", "Call prior", "how much the model leans to calling a tool (0 to 20)"),
    Field("tool_retrieval", "Tool retrieval", "yes/no: show a request only the tools it is about"),
    Field("follow_up_calls", "Follow-up calls", "yes/no: another call after a result when asked"),
)


def shown_value(settings, field: Field) -> str:
    """What the field starts with (never the key itself)."""
    if field.secret:
        return KEEP_KEY
    value = getattr(settings, field.name)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, tuple):
        return os.pathsep.join(str(v) for v in value)
    return str(value)


def check_fields(settings, typed: dict[str, str]) -> tuple[dict, dict[str, str]]:
    """(changes, errors): the parsed values that differ from ``settings``, and an error line
    per bad field."""
    from edgeagent.config import parse_setting

    changes, errors = {}, {}
    for field in FIELDS:
        text = typed.get(field.name, "")
        if field.secret:
            if text == KEEP_KEY:
                continue
            changes[field.name] = None if text.strip() == "-" else text.strip()
            continue
        try:
            value = parse_setting(field.name, text)
        except EdgeAgentError as exc:
            errors[field.name] = exc.message
            continue
        if field.name == "allowed_roots":
            missing = [str(p) for p in value if not Path(p).expanduser().is_dir()]
            if not value or missing:
                errors[field.name] = (
                    f"not a folder: {', '.join(missing)}" if missing else "give at least one folder"
                )
                continue
            value = tuple(Path(p).expanduser().resolve() for p in value)
        if value != getattr(settings, field.name):
            changes[field.name] = value
    return changes, errors


def config_value(value):
    """A setting's value as config.toml holds it."""
    if isinstance(value, tuple):
        return [str(v) for v in value]
    return value


class SettingsScreen(ModalScreen[dict | None]):
    """Dismisses with the changes (setting -> value) once saved, or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "save", "Save")]

    def __init__(self, settings) -> None:
        super().__init__()
        self.settings = settings

    def compose(self) -> ComposeResult:
        with Vertical(id="settings-box"):
            yield Static(Text("Settings", style="bold"), id="settings-title")
            with VerticalScroll(id="settings-body"):
                for field in FIELDS:
                    yield Static(Text.assemble((field.label, "bold"), "  ", (field.help, "dim")))
                    yield Input(
                        value=shown_value(self.settings, field),
                        password=field.secret,
                        placeholder="(set: leave empty to keep)"
                        if field.secret and self.settings.remote_api_key
                        else "",
                        id=f"set-{field.name}",
                    )
                    yield Static("", id=f"err-{field.name}", classes="field-error")
            yield Static("", id="settings-status")
            with Horizontal(id="settings-buttons"):
                yield Button("Save (ctrl+s)", id="settings-save", variant="primary")
                yield Button("Cancel (esc)", id="settings-cancel")

    def typed(self) -> dict[str, str]:
        return {f.name: self.query_one(f"#set-{f.name}", Input).value for f in FIELDS}

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "settings-save":
            self.action_save()
        else:
            self.action_cancel()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_save()

    def action_save(self) -> None:
        from edgeagent.config import set_config_value

        changes, errors = check_fields(self.settings, self.typed())
        for field in FIELDS:
            error = errors.get(field.name, "")
            self.query_one(f"#err-{field.name}", Static).update(Text(error, style="bold red"))
        status = self.query_one("#settings-status", Static)
        if errors:
            status.update(Text(f"{len(errors)} field(s) to fix; nothing saved", style="red"))
            return
        try:
            for name, value in changes.items():
                set_config_value(self.settings.home, name, config_value(value))
        except (OSError, EdgeAgentError) as exc:
            status.update(Text(f"not saved: {exc}", style="red"))
            return
        self.dismiss(changes)

    def action_cancel(self) -> None:
        self.dismiss(None)


def open_settings(app) -> None:
    """Open the settings screen; saved changes go to the app's session (``update_settings``)."""
    if app.busy:
        app.notify("wait for the current request to finish", severity="warning")
        return

    def saved(changes: dict | None) -> None:
        app.focus_prompt()
        if not changes:
            return
        if app.agent is not None:
            app.agent.update_settings(**changes)
            app.settings = app.agent.settings
        else:
            app.settings = app.settings.replace(**changes)
        app.show_network(app.settings)
        names = ", ".join(sorted(changes))
        app.conversation.add_notice(f"settings saved in config.toml and in use: {names}")

    app.push_screen(SettingsScreen(app.settings), saved)
