"""The terminal app under Textual's pilot at a fixed size: a real exchange on a real tiny model,
the confirmation modal in front of a real executor, errors as notices, call cards."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from edgeagent.config import load_settings
from edgeagent.events import CallExecuted, CallProposed, CallValidated, RouteChosen, TokenDelta
from edgeagent.types import RouteDecision, ToolCall, ToolResult
from edgeagent.ui.app import EdgeAgentApp, make_app
from edgeagent.ui.screens.confirm import ConfirmCall
from edgeagent.ui.widgets.conversation import AnswerMessage, CallCard, TurnMeta, UserMessage
from edgeagent.ui.widgets.status import energy_label

SIZE = (100, 32)
TURN_TIMEOUT_S = 60.0


def settings_for(tmp_path, model: str, **extra):
    """Small bounds; one llama.cpp thread (two threads crawl when the 2 cores are shared)."""
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    values = {"max_tokens": 24, "max_steps": 2, "n_threads": 1, "n_ctx": 2048, **extra}
    return load_settings(model=model, allowed_roots=(root,), **values)


async def wait_for(pilot, condition, timeout: float, what: str) -> None:
    """Let the app run until ``condition()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await pilot.pause(0.05)


def failed_load_app(tmp_path) -> EdgeAgentApp:
    """An app whose model cannot load (no file, offline): the UI without any model."""
    return make_app(settings_for(tmp_path, str(tmp_path / "missing.gguf"), offline=True))


@pytest.mark.model
def test_real_exchange_streams_the_answer_and_shows_energy(smollm_path, tmp_path):
    settings = settings_for(tmp_path, str(smollm_path))
    seen: list = []

    async def scenario() -> None:
        app = make_app(settings)
        hook = seen.append
        async with app.run_test(size=SIZE, message_hook=hook) as pilot:
            assert app.conversation.notices()[0].startswith("loading model SmolLM2")
            await wait_for(pilot, lambda: app.agent is not None, TURN_TIMEOUT_S, "the model")
            assert app.agent.store is not None and app.agent.store.path == settings.db_path
            await pilot.press(*"Hello, who are you?")
            await pilot.press("enter")
            assert [w.text for w in app.query(UserMessage)] == ["Hello, who are you?"]
            assert app.query_one("#prompt").value == ""

            def finished() -> bool:
                if isinstance(app.screen, ConfirmCall):  # the model chose a write tool: deny
                    app.screen.dismiss(False)
                return app.turns >= 1

            await wait_for(pilot, finished, TURN_TIMEOUT_S, "the turn to finish")
            await pilot.pause()
            result = app.last_result
            assert app.last_error is None and result is not None
            assert result.answer.strip()
            answer = app.query(AnswerMessage)[-1]
            assert answer.text == result.answer and not answer.has_class("draft")
            assert len(app.query(TurnMeta)) == 1
            status = app.status_bar.plain
            label = energy_label(result.energy_j, result.energy_source, result.energy_estimated)
            assert f"energy {label}" in status and " J (" in status
            assert f"p50 {result.latency_s:.2f} s" in status
            assert "network off" in status and "SmolLM2-135M" in status

            # ctrl+n turns the network on in the same session: model and history stay
            agent, model, history = app.agent, app.agent.model, list(app.agent.history)
            await pilot.press("ctrl+n")
            on = lambda: app.agent.settings.network_allowed and not app.busy  # noqa: E731
            await wait_for(pilot, on, 30, "the network switch")
            assert app.agent is agent and app.agent.context.allow_network
            assert app.agent.model is model and app.agent.history == history
            assert "network on" in app.status_bar.plain
            # ctrl+l clears the log and the history
            await pilot.press("ctrl+l")
            await pilot.pause()
            assert app.conversation.answers() == [] and app.agent.history == []

    asyncio.run(scenario())
    events = [m.event for m in seen if isinstance(m, EdgeAgentApp.AgentEvent)]
    assert any(isinstance(e, TokenDelta) for e in events), "the answer was not streamed"
    assert type(events[-1]).__name__ == "TurnDone"


@pytest.mark.model
def test_a_base_model_is_loaded_with_a_warning_in_the_log(gemma_path, tmp_path):
    settings = settings_for(tmp_path, str(gemma_path))

    async def scenario() -> None:
        app = make_app(settings)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.agent is not None, TURN_TIMEOUT_S, "the model")
            await pilot.pause()
            warnings = [n for n in app.conversation.notices() if "base model" in n]
            assert len(warnings) == 1 and gemma_path.name in warnings[0]

    asyncio.run(scenario())


@pytest.mark.model
def test_write_tool_waits_for_the_modal_and_is_not_run_when_denied(smollm_path, tmp_path):
    from edgeagent.tools.registry import tool_from_function

    ran: list[str] = []

    def save_memo(text: str) -> str:
        """Save a short memo."""
        ran.append(text)
        return "saved"

    settings = settings_for(tmp_path, str(smollm_path))
    tools = [tool_from_function(save_memo, risk="write")]
    results: list[ToolResult] = []
    holder: list = []

    def run_call(text: str) -> None:
        results.append(holder[0].executor.run(ToolCall("save_memo", {"text": text})))

    async def scenario() -> None:
        app = make_app(settings, agent_options={"tools": tools})
        async with app.run_test(size=SIZE) as pilot:
            ready = lambda: app.agent is not None and not app.busy  # noqa: E731
            await wait_for(pilot, ready, TURN_TIMEOUT_S, "the model")
            agent = app.agent
            holder.append(agent)
            assert agent.executor.confirm == app.confirm_call
            for key, expected in (
                ("escape", "declined"),
                ("n", "declined"),
                ("enter", "declined"),
                ("y", "ok"),
            ):
                worker = threading.Thread(target=run_call, args=(key,), daemon=True)
                worker.start()
                await wait_for(pilot, lambda: isinstance(app.screen, ConfirmCall), 10, "the modal")
                await pilot.pause()
                assert "save_memo" in app.export_screenshot()
                assert worker.is_alive(), "the call must wait for the answer"
                await pilot.press(key)
                await wait_for(pilot, lambda w=worker: not w.is_alive(), 10, "the executor")
                assert results[-1].status == expected, key
                assert not isinstance(app.screen, ConfirmCall)
            assert ran == ["y"]

            # an EdgeAgentError from the agent is a notice in the log, not a crash
            agent.store.close()
            await pilot.press(*"hi", "enter")
            await wait_for(pilot, lambda: app.turns >= 1, 10, "the failed turn")
            await pilot.pause()
            assert app.last_result is None and "database is closed" in app.last_error
            assert any("database is closed" in n for n in app.conversation.notices())
            assert "error" in app.status_bar.plain and not app.busy

    asyncio.run(scenario())


def test_a_model_that_cannot_load_is_reported_in_the_log(tmp_path):
    async def scenario() -> None:
        app = failed_load_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: not app.busy, 10, "the load to fail")
            await pilot.pause()
            notices = app.conversation.notices()
            assert notices[0] == "loading model missing.gguf ..."
            assert notices[-1].startswith("could not load the model: no model file")
            assert "no model" in app.status_bar.plain
            await pilot.press(*"hi", "enter")  # refused with a notification, nothing runs
            assert app.turns == 0 and not app.query(UserMessage)

    asyncio.run(scenario())


def test_call_card_shows_verdict_confidence_route_status_latency_and_preview(tmp_path):
    call = ToolCall(
        "read_file",
        {"path": "notes.txt"},
        confidence=0.83,
        confidence_parts={"decision": 0.9, "arg_min": 0.8},
    )
    decision = RouteDecision("local", 0.83, 0.5, "network off (confidence 0.83 >= 0.50)")
    result = ToolResult(
        call.id, "read_file", "ok", output="The launch code is 4242.", duration_s=0.012
    )

    async def scenario() -> None:
        app = failed_load_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: not app.busy, 10, "the load to fail")
            log = app.conversation
            for event in (
                CallProposed("r1", call),
                CallValidated("r1", call, True, None),
                RouteChosen("r1", decision),
                CallExecuted("r1", call, result),
            ):
                log.post_message(EdgeAgentApp.AgentEvent(event))
            await pilot.pause()
            (card,) = app.query(CallCard)
            text = card.plain
            sure = "sure (0.83): tool choice 90%, weakest argument 80%"
            for part in ('read_file {"path":"notes.txt"}', "✓ ran", sure, "local"):
                assert part in text
            for part in ("network off", "12 ms", "→ The launch code is 4242."):
                assert part in text
            assert "valid" not in text and text.count("ran") == 1  # one status, in words
            assert sure in card.tooltip and "decision" not in card.tooltip
            assert "in detail" not in text
            await pilot.click(CallCard)
            assert "how sure, in detail: " + sure in card.plain
            assert app.focused is app.query_one("#prompt")  # a click does not steal typing

            bad = ToolCall("read_file", {"path": "/etc/passwd"}, confidence=0.4)
            log.post_message(EdgeAgentApp.AgentEvent(CallProposed("r2", bad)))
            log.post_message(
                EdgeAgentApp.AgentEvent(CallValidated("r2", bad, False, "path outside roots"))
            )
            await pilot.pause()
            text = app.query(CallCard)[-1].plain
            assert "✗ invalid" in text and "→ path outside roots" in text
            assert text.count("invalid") == 1  # not a verdict and a status saying the same
            assert "unsure (0.40)" in text

    asyncio.run(scenario())


def test_a_turn_on_a_scripted_model_is_drawn_from_the_events(tmp_path):
    """No GGUF: the app builds its session around a FakeModel, runs a tool call, draws the
    card, the answer and the meta line from the events, and switches the network in place."""
    from edgeagent.testing import FakeModel, call

    settings = settings_for(tmp_path, "fake-model.gguf")
    (settings.allowed_roots[0] / "notes.txt").write_text("Buy milk.\n")
    model = FakeModel([call("read_file", path="notes.txt"), "The note says: buy milk."])
    seen: list = []

    async def scenario() -> None:
        app = make_app(settings, model=model, on_event=seen.append)
        async with app.run_test(size=SIZE) as pilot:
            ready = lambda: app.agent is not None and not app.busy  # noqa: E731
            await wait_for(pilot, ready, 10, "the session")
            assert app.agent.model is model
            await pilot.press(*"Read notes.txt", "enter")
            await wait_for(pilot, lambda: app.turns >= 1, 10, "the turn")
            await pilot.pause()
            (card,) = app.query(CallCard)
            assert "read_file" in card.plain and "✓ ran" in card.plain
            assert app.conversation.answers()[-1] == "The note says: buy milk."
            (meta,) = app.query(TurnMeta)
            assert "local" in meta.text and " J" in meta.text
            agent, history = app.agent, list(app.agent.history)
            await pilot.press("ctrl+n")
            on = lambda: app.agent.settings.network_allowed and not app.busy  # noqa: E731
            await wait_for(pilot, on, 10, "the network switch")
            assert app.agent is agent and agent.history == history and agent.model is model
            await pilot.press("ctrl+l")
            await pilot.pause()
            assert app.agent.history == [] and app.conversation.answers() == []

    asyncio.run(scenario())
    done = [e for e in seen if type(e).__name__ == "TurnDone"]
    assert len(done) == 1 and done[0].result.status == "done" and model.remaining == 0
