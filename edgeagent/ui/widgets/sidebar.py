"""The conversations sidebar (Ctrl+B): past conversations, newest first, searchable.

Enter opens one (the app resumes it: the log is redrawn and the model gets its history back);
``r`` renames, ``d`` deletes (after a confirmation), ``e`` exports it to markdown and JSON.
It reads and manages the history through ``store.conversations`` on the app's agent session;
opening is the app's (``open_conversation``): the session resumes, the log is redrawn.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, OptionList
from textual.widgets.option_list import Option

from edgeagent.errors import EdgeAgentError


def when(timestamp: float) -> str:
    """``14:05`` today, else ``30 Nov``."""
    local = time.localtime(timestamp)
    today = time.localtime()
    if local[:3] == today[:3]:
        return time.strftime("%H:%M", local)
    return time.strftime("%d %b", local)


class ConversationPicked(Message):
    """The user chose an action on a conversation: open, rename, delete or export."""

    def __init__(self, action: str, conversation_id: str, title: str) -> None:
        super().__init__()
        self.action = action
        self.conversation_id = conversation_id
        self.title = title


class ConversationOptions(OptionList):
    """The list itself; the keys act on the highlighted conversation."""

    BINDINGS = [
        Binding("r", "pick('rename')", "Rename"),
        Binding("d", "pick('delete')", "Delete"),
        Binding("e", "pick('export')", "Export"),
    ]

    def action_pick(self, action: str) -> None:
        if self.highlighted is None:
            return
        option = self.get_option_at_index(self.highlighted)
        title = str(option.prompt).split("\n")[0]
        self.post_message(ConversationPicked(action, option.id or "", title))


class Sidebar(Vertical):
    """A search box over the list of past conversations."""

    def compose(self) -> ComposeResult:
        yield Input(placeholder="search conversations", id="conv-search")
        yield ConversationOptions(id="conv-list")

    def show(self, summaries: list) -> None:
        """Fill the list with ``store.conversations.ConversationSummary`` rows."""
        options = self.query_one(ConversationOptions)
        options.clear_options()
        if not summaries:
            options.add_option(Option(Text("no conversations yet", style="dim"), disabled=True))
            return
        for summary in summaries:
            label = Text(summary.label(), no_wrap=True, overflow="ellipsis")
            label.append(f"\n{when(summary.last_at)} · {summary.requests} requests", style="dim")
            options.add_option(Option(label, id=summary.id))
        options.highlighted = 0

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            title = str(event.option.prompt).split("\n")[0]
            self.post_message(ConversationPicked("open", event.option.id, title))

    # ---- the history behind the list ------------------------------------------------------

    @property
    def _store(self):
        agent = getattr(self.app, "agent", None)
        return None if agent is None else agent.store

    def refresh_list(self, query: str | None = None) -> None:
        """List the conversations matching the search box (or ``query``)."""
        from edgeagent.store.conversations import list_conversations

        if self._store is None:
            return
        if query is None:
            query = self.query_one("#conv-search", Input).value
        try:
            self.show(list_conversations(self._store, query=query))
        except EdgeAgentError as exc:
            self.app.notify(str(exc), severity="error")

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.refresh_list(event.value)

    def on_conversation_picked(self, message: ConversationPicked) -> None:
        """Open, rename, delete or export the picked conversation."""
        message.stop()
        app = self.app
        if self._store is None:
            return
        if getattr(app, "busy", False):
            app.notify("wait for the current request to finish", severity="warning")
            return
        picked, title = message.conversation_id, message.title
        if message.action == "open":
            app.open_conversation(picked, title)
        elif message.action == "rename":
            from edgeagent.ui.screens.ask import AskText

            app.push_screen(AskText("New title:", title), lambda new: self._rename(picked, new))
        elif message.action == "delete":
            from edgeagent.ui.screens.ask import AskYesNo

            question = f"Delete “{title}” and everything in it? This cannot be undone."
            app.push_screen(AskYesNo(question), lambda yes: self._delete(picked, yes))
        elif message.action == "export":
            self.export(picked)

    def _rename(self, conversation_id: str, title: str | None) -> None:
        from edgeagent.store.conversations import rename_conversation

        if title is not None:
            try:
                rename_conversation(self._store, conversation_id, title)
            except EdgeAgentError as exc:
                self.app.notify(str(exc), severity="error")
        self.refresh_list()
        self.query_one("#conv-list").focus()

    def _delete(self, conversation_id: str, yes: bool | None) -> None:
        from edgeagent.store.conversations import delete_conversation

        agent = self.app.agent
        if yes:
            try:
                delete_conversation(self._store, conversation_id)
            except EdgeAgentError as exc:
                self.app.notify(str(exc), severity="error")
            else:
                if conversation_id == agent.conversation_id:
                    agent.new_conversation()
                    self.app.conversation.clear()
                self.app.notify("conversation deleted")
        self.refresh_list()
        self.query_one("#conv-list").focus()

    def export(self, conversation_id: str) -> None:
        """Write the conversation to ``$EDGEAGENT_HOME/exports`` as markdown and JSON."""
        from edgeagent.store.conversations import export_json, export_markdown

        folder = self.app.settings.home / "exports"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            markdown = folder / f"conversation-{conversation_id}.md"
            markdown.write_text(export_markdown(self._store, conversation_id))
            data = folder / f"conversation-{conversation_id}.json"
            data.write_text(export_json(self._store, conversation_id))
        except (OSError, EdgeAgentError) as exc:
            self.app.notify(f"export failed: {exc}", severity="error")
            return
        self.app.notify(f"exported to {markdown} and {data.name}")
