"""Widgets of the terminal app: the conversation log and the status bar."""

from edgeagent.ui.widgets.conversation import (
    AnswerMessage,
    CallCard,
    ConversationLog,
    NoticeLine,
    TurnMeta,
    UserMessage,
)
from edgeagent.ui.widgets.status import StatusBar, energy_label

__all__ = [
    "AnswerMessage",
    "CallCard",
    "ConversationLog",
    "NoticeLine",
    "StatusBar",
    "TurnMeta",
    "UserMessage",
    "energy_label",
]
