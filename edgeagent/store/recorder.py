"""The store as an event consumer: every row of the history is written from the agent's events.

The agent loop never calls the store. ``StoreRecorder`` is the first sink of an agent's events
(before the app or the CLI see them), so a row exists before anyone is shown it: the request
when ``RequestStarted`` arrives, each call before it runs (``CallsChosen``), its result when it
has run, the request's outcome and metrics with ``TurnDone``.
"""

from __future__ import annotations

from edgeagent.events import (
    CallExecuted,
    CallsChosen,
    ConversationStarted,
    Event,
    MessageAdded,
    RequestStarted,
    TurnDone,
)


class StoreRecorder:
    """An event sink that writes conversations, requests, messages and calls to a Store."""

    def __init__(self, store) -> None:
        self.store = store

    def __call__(self, event: Event) -> None:
        """Write what ``event`` adds to the history (events that add nothing are ignored)."""
        store = self.store
        if isinstance(event, MessageAdded):
            store.add_message(
                event.conversation_id,
                event.role,
                event.content,
                name=event.name,
                call_id=event.call_id,
            )
        elif isinstance(event, CallExecuted):
            store.update_tool_call(event.call.id, event.result)
        elif isinstance(event, CallsChosen):
            for check in event.checks:
                store.add_tool_call(
                    event.request_id,
                    check.call,
                    schema_valid=check.schema_valid,
                    semantic_valid=check.semantic_valid,
                    validation_error=check.error,
                )
        elif isinstance(event, RequestStarted):
            store.start_request(
                event.conversation_id, event.prompt, event.model, request_id=event.request_id
            )
        elif isinstance(event, ConversationStarted):
            store.start_conversation(
                event.title, event.model, conversation_id=event.conversation_id
            )
        elif isinstance(event, TurnDone) and event.result is not None:
            self._finish(event.result)

    def _finish(self, result) -> None:
        """The request's outcome and metrics (``requests`` row)."""
        decision = result.route
        self.store.finish_request(
            result.request_id,
            usage=result.usage,  # prompt, cached and output tokens, ttft (Store's convenience)
            status=result.status,
            answer=result.answer,
            route=decision.route if decision else "local",
            route_reason=decision.reason if decision else "",
            confidence=result.confidence,
            confidence_threshold=result.confidence_threshold,
            latency_s=result.latency_s,
            energy_j=result.energy_j,
            energy_source=result.energy_source,
            energy_estimated=result.energy_estimated,
            engine=result.engine,
            error=result.error,
            answer_by=result.answer_by,
        )
