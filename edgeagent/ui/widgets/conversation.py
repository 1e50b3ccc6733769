"""The conversation log: user turns, the streamed answer, a card per tool call, notices.

The log only displays. Agent events reach it as ``EdgeAgentApp.AgentEvent`` messages (posted by
the app from the agent's worker thread through ``call_from_thread``) and the end of a turn as
the ``TurnDone`` event (its result); it never calls the model or the tools.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import RenderableType
from rich.markdown import Markdown
from rich.text import Text
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

from edgeagent.events import (
    CallExecuted,
    CallProposed,
    CallValidated,
    Event,
    Notice,
    RouteChosen,
    TokenDelta,
    TurnDone,
)
from edgeagent.types import RouteDecision, ToolCall, ToolResult

PREVIEW_CHARS = 160
EXPANDED_CHARS = 2000
STATUS_STYLES = {
    "ok": "bold green",
    "proposed": "dim",
    "declined": "bold yellow",
    "skipped": "yellow",
    "not_executed": "yellow",
    "invalid": "bold red",
    "error": "bold red",
    "timeout": "bold red",
}
ROUTE_STYLES = {"local": "green", "remote": "magenta", "local_fallback": "yellow"}


def clip(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: max(0, limit - 1)] + "…"


def _json(value: Any, indent: int | None = None) -> str:
    separators = None if indent else (",", ":")
    return json.dumps(value, ensure_ascii=False, indent=indent, separators=separators, default=str)


class UserMessage(Static):
    """What the user typed."""

    def __init__(self, text: str) -> None:
        super().__init__(Text.assemble(("you › ", "bold"), text), classes="user")
        self.text = text


def as_markdown(text: str) -> RenderableType:
    """The answer rendered as markdown (code blocks highlighted); a call envelope as text."""
    if not text.strip():
        return Text("(empty answer)", style="dim")
    if text.lstrip()[:1] in ("{", "["):
        return Text(text)
    return Markdown(text, code_theme="monokai", hyperlinks=False)


class AnswerMessage(Static):
    """The model's answer as markdown: streamed token by token, then set to the final answer."""

    def __init__(self, request_id: str, text: str = "", *, draft: bool = True) -> None:
        super().__init__(as_markdown(text), classes="answer draft" if draft else "answer")
        self.request_id = request_id
        self.text = text

    @property
    def looks_like_call(self) -> bool:
        """The streamed text is the start of a tool-call envelope, not an answer."""
        return self.text.lstrip()[:1] in ("{", "[")

    def append(self, piece: str) -> None:
        self.text += piece
        self.update(Text(self.text) if self.looks_like_call else as_markdown(self.text))

    def finish(self, answer: str) -> None:
        self.text = answer
        self.remove_class("draft")
        self.update(as_markdown(answer))


class TurnMeta(Static):
    """One dim line under an answer: route, confidence, latency, tokens, energy."""

    def __init__(self, text: str) -> None:
        super().__init__(Text(text), classes="meta")
        self.text = text


class NoticeLine(Static):
    """Something the user should know: a warning, an error, the model loading."""

    def __init__(self, text: str, level: str = "info") -> None:
        mark = {"error": "✗ ", "warning": "! "}.get(level, "· ")
        super().__init__(Text(mark + text), classes=f"notice {level}")
        self.text = text
        self.level = level


SURE, FAIRLY_SURE = 0.8, 0.5
PART_WORDS = {
    "decision": "tool choice",
    "name_margin": "name over the runner-up",
    "arg_min": "weakest argument",
    "arg_mean": "arguments on average",
}
STATUS_WORDS = {
    "ok": "✓ ran",
    "declined": "declined",
    "skipped": "skipped (already tried)",
    "not_executed": "not run (no implementation)",
    "invalid": "✗ invalid",
    "error": "✗ failed",
    "timeout": "✗ timed out",
}


def how_sure(score: float | None, parts: dict[str, float], detail: bool = False) -> str:
    """Confidence in words, e.g. ``unsure (0.27): tool choice 55%, weakest argument 36%``."""
    if score is None:
        return "how sure: unknown"
    word = "sure" if score >= SURE else "fairly sure" if score >= FAIRLY_SURE else "unsure"
    keys = list(PART_WORDS) if detail else ["decision", "arg_min"]
    shown = [f"{PART_WORDS[k]} {parts[k] * 100:.0f}%" for k in keys if k in parts]
    return f"{word} ({score:.2f})" + (": " + ", ".join(shown) if shown else "")


class CallCard(Widget, can_focus=True):
    """A compact card for one tool call; Enter or a click expands it (how sure, full output)."""

    BINDINGS = [Binding("enter", "toggle", "Details")]
    expanded: reactive[bool] = reactive(False, layout=True)

    def __init__(self, request_id: str, call: ToolCall) -> None:
        super().__init__(classes="call")
        self.request_id = request_id
        self.call = call
        self.valid: bool | None = None
        self.validation_error: str | None = None
        self.decision: RouteDecision | None = None
        self.result: ToolResult | None = None
        self._update_tooltip()

    # ---- state ---------------------------------------------------------------------------

    def set_call(self, call: ToolCall) -> None:
        self.call = call
        self._changed()

    def set_validation(self, valid: bool, error: str | None) -> None:
        self.valid, self.validation_error = valid, error
        self._changed()

    def set_route(self, decision: RouteDecision) -> None:
        self.decision = decision
        self._changed()

    def set_result(self, result: ToolResult) -> None:
        self.result = result
        if self.valid is None:
            self.valid = result.status not in ("invalid",)
        self._changed()

    def _changed(self) -> None:
        self._update_tooltip()
        self.refresh(layout=True)

    def action_toggle(self) -> None:
        self.expanded = not self.expanded

    def on_click(self) -> None:
        """Expand or fold; typing goes on into the input (a click must not steal it)."""
        self.expanded = not self.expanded
        prompt = self.screen.query("#prompt")
        if prompt:
            prompt.first().focus()

    # ---- rendering -----------------------------------------------------------------------

    @property
    def status(self) -> str:
        if self.result is not None:
            return self.result.status
        if self.valid is False:
            return "invalid"
        return self.call.status

    def how_sure(self, detail: bool = False) -> str:
        return how_sure(self.call.confidence, self.call.confidence_parts or {}, detail)

    def _update_tooltip(self) -> None:
        lines = [self.how_sure(detail=True)]
        if self.decision is not None:
            lines.append(f"route {self.decision.route}: {self.decision.reason}")
        lines.append("Enter or click for details")
        self.tooltip = "\n".join(lines)

    def render(self) -> Text:
        call = self.call
        width = max(20, (self.size.width or 96) - 4)
        text = Text()
        text.append("⚙ ", style="bold")
        text.append(call.name, style="bold cyan")
        if call.repaired:
            text.append(" (repaired)", style="dim")
        args = _json(call.arguments)
        text.append(" " + (args if self.expanded else clip(args, width - len(call.name) - 3)))
        text.append("\n")
        text.append_text(self._verdict_line())
        route = self.decision.route if self.decision else call.route
        text.append("\n  route ")
        text.append(route, style=ROUTE_STYLES.get(route, ""))
        if self.decision is not None:
            reason = self.decision.reason
            shown = reason if self.expanded else clip(reason, width - len(route) - 11)
            text.append(f": {shown}", style="dim")
        if self.expanded:
            text.append(f"\n  how sure, in detail: {self.how_sure(detail=True)}", style="dim")
            if self.result is not None and self.result.wait_s:
                text.append(f"\n  you took {self.result.wait_s:.1f} s to confirm", style="dim")
        body = self._body()
        if body:
            style = "red" if self.status in ("error", "timeout", "invalid") else ""
            if self.expanded:
                shown = body[:EXPANDED_CHARS].replace("\n", "\n    ")
            else:
                shown = clip(body, width - 4)
            text.append("\n  → ", style="dim")
            text.append(shown, style=style)
        return text

    def _status_words(self) -> str:
        """One status: what became of the call (not a verdict and a status side by side)."""
        if self.result is None and self.valid is None:
            return "validating"
        if self.result is None and self.valid:
            return (
                "✓ valid"
                if self.call.status == "proposed"
                else STATUS_WORDS.get(self.call.status, self.call.status)
            )
        return STATUS_WORDS.get(self.status, self.status)

    def _verdict_line(self) -> Text:
        line = Text("  ")
        words = self._status_words()
        style = "green" if words == "✓ valid" else STATUS_STYLES.get(self.status, "")
        line.append(words, style=style)
        line.append(f" · {self.how_sure()}")
        if self.result is not None:
            line.append(f" · {self.result.duration_s * 1000:.0f} ms")  # the tool's own time
            if self.result.truncated:
                line.append(" · truncated", style="yellow")
        return line

    def _body(self) -> str:
        if self.result is not None:
            if self.result.ok:
                return self.result.output or "(no output)"
            return self.result.error or self.result.status
        if self.valid is False:
            return self.validation_error or "invalid arguments"
        return ""

    @property
    def plain(self) -> str:
        return self.render().plain


class ConversationLog(VerticalScroll, can_focus=False):
    """The scrolling log. ``show(event)`` draws one agent event; ``finish_turn`` closes a turn.

    It takes no focus itself (Tab goes from the input straight to the call cards); the app
    scrolls it with PageUp/PageDown.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._draft: AnswerMessage | None = None
        self._cards: dict[str, CallCard] = {}

    # ---- messages from the app ------------------------------------------------------------

    def on_edge_agent_app_agent_event(self, message: Any) -> None:
        """``EdgeAgentApp.AgentEvent``: one agent event, already on the UI thread."""
        self.show(message.event)

    # ---- drawing --------------------------------------------------------------------------

    def _add(self, widget: Widget) -> Widget:
        self.mount(widget)
        self.call_after_refresh(self.scroll_end, animate=False)
        return widget

    def add_user(self, text: str) -> UserMessage:
        self._draft = None
        return self._add(UserMessage(text))  # type: ignore[return-value]

    def add_notice(self, text: str, level: str = "info") -> NoticeLine:
        return self._add(NoticeLine(text, level))  # type: ignore[return-value]

    def show(self, event: Event) -> None:
        """Draw one agent event."""
        if isinstance(event, TokenDelta):
            if self._draft is None:
                self._draft = self._add(AnswerMessage(event.request_id))  # type: ignore[assignment]
            self._draft.append(event.text)
            self.call_after_refresh(self.scroll_end, animate=False)
        elif isinstance(event, CallProposed):
            if self._draft is not None and self._draft.looks_like_call:
                self._draft.remove()
            self._draft = None
            self._card(event.request_id, event.call)
        elif isinstance(event, CallValidated):
            self._card(event.request_id, event.call).set_validation(event.valid, event.error)
        elif isinstance(event, RouteChosen):
            for card in self._cards.values():
                if card.request_id == event.request_id and card.decision is None:
                    card.set_route(event.decision)
        elif isinstance(event, CallExecuted):
            self._card(event.request_id, event.call).set_result(event.result)
        elif isinstance(event, Notice):
            self.add_notice(event.text, event.level)
        elif isinstance(event, TurnDone):
            result = event.result
            if result is not None and result.status == "failed":
                self.finish_turn(None, result.error or "the request failed")
                return
            if self._draft is not None:
                self._draft.finish(event.answer)
            else:
                final = AnswerMessage(event.request_id, draft=False)
                final.finish(event.answer)
                self._add(final)
            self._draft = None
            self.finish_turn(result, None)

    def _card(self, request_id: str, call: ToolCall) -> CallCard:
        card = self._cards.get(call.id)
        if card is None:
            card = CallCard(request_id, call)
            self._cards[call.id] = card
            self._add(card)
        elif card.call is not call:
            card.set_call(call)
        return card

    def finish_turn(self, result: Any | None, error: str | None) -> None:
        """Close the turn: a meta line for a result, an error notice otherwise."""
        if self._draft is not None:
            if error is not None and self._draft.looks_like_call:
                self._draft.remove()
            else:
                self._draft.finish(self._draft.text)
            self._draft = None
        if error is not None:
            self.add_notice(error, "error")
            return
        if result is None:
            return
        from edgeagent.ui.widgets.status import energy_label

        route = result.route.route if result.route else "local"
        score = "-" if result.confidence is None else f"{result.confidence:.2f}"
        parts = [
            route,
            f"confidence {score}",
            f"{result.latency_s:.2f} s",
            f"ttft {result.usage.ttft_s:.2f} s",
            f"{result.usage.output_tokens} tok",
            energy_label(result.energy_j, result.energy_source, result.energy_estimated),
        ]
        if result.steps > 1:
            parts.append(f"{result.steps} steps")
        self._add(TurnMeta(" · ".join(parts)))

    def replay(self, record: dict) -> None:
        """Draw a stored conversation (``store.conversations.conversation_record``): each
        request, its calls as one line each, the answer and what it cost."""
        from edgeagent.store.conversations import cost_line

        for request in record["requests"]:
            self.add_user(request["prompt"])
            for call in request["calls"]:
                line = f"{call['name']} {call['arguments_json']} · {call['status']}"
                self._add(TurnMeta(line))
            final = AnswerMessage(request["id"], draft=False)
            final.finish(request.get("answer") or "")
            self._add(final)
            self._add(TurnMeta(cost_line(request)))
        self._draft = None

    def clear(self) -> None:
        """Remove everything shown."""
        self._draft = None
        self._cards.clear()
        self.remove_children()

    # ---- reading back (tests, screenshots) ------------------------------------------------

    def answers(self) -> list[str]:
        return [w.text for w in self.query(AnswerMessage)]

    def notices(self) -> list[str]:
        return [w.text for w in self.query(NoticeLine)]

    def cards(self) -> list[CallCard]:
        return list(self.query(CallCard))
