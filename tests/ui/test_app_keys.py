"""The app from the keyboard, on a scripted model (no GGUF): help, stop, cards, palette,
screenshots, markdown answers, and a status bar that fits 80 columns."""

from __future__ import annotations

import asyncio
import threading

from edgeagent.testing import FakeModel, FakeRequest, call
from edgeagent.ui.app import make_app
from edgeagent.ui.screens.help import HelpScreen
from edgeagent.ui.widgets.conversation import AnswerMessage, CallCard, as_markdown
from edgeagent.ui.widgets.status import StatusBar
from tests.ui.test_app import settings_for, wait_for

SMALL = (80, 24)


def fake_app(tmp_path, outputs, **model_options):
    """An app whose session runs on a FakeModel, with notes.txt in its root."""
    settings = settings_for(tmp_path, "fake-model.gguf")
    (settings.allowed_roots[0] / "notes.txt").write_text("Buy milk.\n")
    model = FakeModel(outputs, **model_options)
    return make_app(settings, model=model), model, settings


async def ready(pilot, app) -> None:
    await wait_for(pilot, lambda: app.agent is not None and not app.busy, 10, "the session")


def test_f1_opens_the_help_and_escape_closes_it_back_to_the_input(tmp_path):
    app, _model, _settings = fake_app(tmp_path, [])

    async def scenario() -> None:
        async with app.run_test(size=SMALL) as pilot:
            await ready(pilot, app)
            await pilot.press("f1")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            listed = [key for key, _ in app.screen.bindings]
            for key in ("Escape", "Ctrl+N", "Ctrl+L", "Ctrl+B", "Ctrl+O", "Ctrl+S", "Ctrl+P"):
                assert any(key in k for k in listed), key
            bound = {b.key for b in app.BINDINGS}
            assert {"escape", "ctrl+n", "ctrl+l", "ctrl+b", "ctrl+o", "ctrl+s", "f1"} <= bound
            assert "Escape" in app.export_screenshot()  # drawn, at 80x24 too
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, HelpScreen)
            assert app.focused is app.query_one("#prompt")
            await pilot.press("?")  # in the input, ? is text, not help
            assert app.query_one("#prompt").value == "?"

    asyncio.run(scenario())


def test_escape_stops_a_running_decode_within_one_token_and_the_next_request_runs(tmp_path):
    gate = threading.Event()
    started = threading.Event()

    def hold(request: FakeRequest) -> None:
        started.set()
        gate.wait(10)

    long_answer = " ".join(["word"] * 40)
    app, model, _settings = fake_app(tmp_path, [long_answer, "Fine."], on_generate=hold)
    seen: list = []

    async def scenario() -> None:
        async with app.run_test(size=SMALL) as pilot:
            await ready(pilot, app)
            app._forward = seen.append
            await pilot.press(*"Say many words", "enter")
            await wait_for(pilot, started.is_set, 10, "the decode to start")
            await pilot.press("escape")
            assert "stopping" in app.status_bar.plain
            gate.set()
            await wait_for(pilot, lambda: app.turns >= 1, 10, "the stop")
            await pilot.pause()
            assert app.last_result is None and "stopped by the user" in app.last_error
            assert any("stopped by the user" in n for n in app.conversation.notices())
            tokens = [e for e in seen if type(e).__name__ == "TokenDelta"]
            assert len(tokens) <= 1  # the decode stopped at its first token
            done = [e for e in seen if type(e).__name__ == "TurnDone"]
            assert done and done[-1].result.status == "failed"
            await pilot.press(*"Hello", "enter")  # the stop does not stick
            await wait_for(pilot, lambda: app.turns >= 2, 10, "the next turn")
            assert app.last_error is None and app.last_result.answer == "Fine."

    asyncio.run(scenario())
    assert model.remaining == 0


def test_cards_take_the_keyboard_with_tab_and_open_with_enter(tmp_path):
    app, _model, _settings = fake_app(
        tmp_path, [call("read_file", path="notes.txt"), "The note says: buy milk."]
    )

    async def scenario() -> None:
        async with app.run_test(size=SMALL) as pilot:
            await ready(pilot, app)
            await pilot.press(*"Read notes.txt", "enter")
            await wait_for(pilot, lambda: app.turns >= 1, 10, "the turn")
            await pilot.pause()
            (card,) = app.query(CallCard)
            await pilot.press("tab")
            assert app.focused is card and not card.expanded
            await pilot.press("enter")
            assert card.expanded and "how sure, in detail" in card.plain
            await pilot.press("escape")  # idle: back to the input
            assert app.focused is app.query_one("#prompt")

    asyncio.run(scenario())


def test_answers_are_markdown_and_the_last_one_can_be_copied(tmp_path):
    answer = "Use this:\n\n```python\nprint('hi')\n```\n\n- one\n- two"
    app, _model, _settings = fake_app(tmp_path, [answer])
    copied: list[str] = []

    async def scenario() -> None:
        async with app.run_test(size=(100, 32)) as pilot:
            await ready(pilot, app)
            app.copy_to_clipboard = copied.append  # type: ignore[method-assign]
            await pilot.press(*"Show me python code", "enter")
            await wait_for(pilot, lambda: app.turns >= 1, 10, "the turn")
            await pilot.pause()
            assert app.query(AnswerMessage)[-1].text == answer
            screen = app.export_screenshot()
            assert "print" in screen and "```" not in screen  # the fence is rendered, not shown
            await pilot.press("ctrl+y")
            assert copied == [answer]
            app.action_export()  # the palette's "Export conversation"
            (exported,) = (app.settings.home / "exports").glob("*.md")
            assert "Show me python code" in exported.read_text()

    asyncio.run(scenario())
    assert "```" not in str(as_markdown("plain words"))


def test_the_palette_has_the_apps_commands_and_screenshots_land_in_home(tmp_path):
    app, _model, settings = fake_app(tmp_path, [])

    async def scenario() -> None:
        async with app.run_test(size=SMALL) as pilot:
            await ready(pilot, app)
            titles = [c.title for c in app.get_system_commands(app.screen)]
            for title in ("New conversation", "Network on/off", "Stop", "Help", "Screenshot"):
                assert title in titles
            for title in ("Switch model", "Settings", "Conversations", "Export conversation"):
                assert title in titles
            app.deliver_screenshot()
            await pilot.pause()

    asyncio.run(scenario())
    saved = list((settings.home / "screenshots").glob("*.svg"))
    assert len(saved) == 1 and "<svg" in saved[0].read_text()[:2000]


def test_the_status_bar_drops_whole_fields_by_priority_to_fit():
    bar = StatusBar()
    bar.model_name = "SmolLM2-135M-Instruct.Q4_1.gguf"
    bar.network, bar.state, bar.energy, bar.p50_s = True, "ready", "34.60 J (estimated)", 2.19
    wide = bar.line(200).plain
    assert "SmolLM2" in wide and "p50 2.19 s" in wide
    for width in (80, 100):
        line = bar.line(width)
        assert line.cell_len <= width
        for field in ("ready", "network on", "energy 34.60 J", "p50 2.19 s"):
            assert field in line.plain, (width, line.plain)
    narrow = bar.line(40).plain
    assert "ready" in narrow and "p50" not in narrow and "…" not in narrow


def test_past_conversations_open_rename_delete_and_export_from_the_sidebar(tmp_path):
    from edgeagent.ui.screens.ask import AskText, AskYesNo
    from edgeagent.ui.widgets.sidebar import Sidebar

    app, model, settings = fake_app(
        tmp_path, ["Milk is in the fridge.", "Take the bus.", "It was the fridge."]
    )

    async def scenario() -> None:
        async with app.run_test(size=(100, 32)) as pilot:
            await ready(pilot, app)
            await pilot.press(*"Where is the milk?", "enter")
            await wait_for(pilot, lambda: app.turns >= 1, 10, "turn 1")
            milk = app.agent.conversation_id
            await pilot.press("ctrl+l")
            await pilot.press(*"How do I get to work?", "enter")
            await wait_for(pilot, lambda: app.turns >= 2, 10, "turn 2")
            await pilot.press("ctrl+b")
            await pilot.pause()
            sidebar = app.query_one(Sidebar)
            options = sidebar.query_one("#conv-list")
            assert sidebar.display and options.option_count == 2
            assert app.focused is options
            # search narrows the list
            sidebar.query_one("#conv-search").value = "fridge"
            await pilot.pause()
            assert options.option_count == 1
            # open it: the log shows it again and the model continues it
            options.focus()
            await pilot.press("enter")
            await pilot.pause()
            assert not sidebar.display and app.focused is app.query_one("#prompt")
            assert app.agent.conversation_id == milk
            assert app.conversation.answers() == ["Milk is in the fridge."]
            assert any("resumed" in n for n in app.conversation.notices())
            await pilot.press(*"Where was it again?", "enter")
            await wait_for(pilot, lambda: app.turns >= 3, 10, "turn 3")
            assert "Where is the milk?" in model.requests[-1].prompt
            # rename, export, delete
            await pilot.press("ctrl+b")
            sidebar.query_one("#conv-search").value = ""
            await pilot.pause()
            options.focus()
            options.highlighted = [options.get_option_at_index(i).id for i in range(2)].index(milk)
            await pilot.press("r")
            await pilot.pause()
            assert isinstance(app.screen, AskText)
            app.screen.query_one("#ask-input").value = "Groceries"
            await pilot.press("enter")
            await pilot.pause()
            assert "Groceries" in str(options.get_option(milk).prompt)
            await pilot.press("e")
            await pilot.pause()
            await pilot.press("d")
            await pilot.pause()
            assert isinstance(app.screen, AskYesNo)
            await pilot.press("y")
            await pilot.pause()
            assert options.option_count == 1 and app.agent.conversation_id != milk
            assert app.conversation.answers() == []

    asyncio.run(scenario())
    (exported,) = (settings.home / "exports").glob("conversation-*.md")
    assert "Where is the milk?" in exported.read_text() and "# Groceries" in exported.read_text()
    assert exported.with_suffix(".json").is_file()


def test_the_session_panel_plots_each_request(tmp_path):
    from edgeagent.ui.widgets.session import SessionPanel

    app, _model, _settings = fake_app(tmp_path, ["One.", "Two."])

    async def scenario() -> None:
        async with app.run_test(size=SMALL) as pilot:
            await ready(pilot, app)
            panel = app.query_one(SessionPanel)
            assert not panel.display
            for n, prompt in enumerate(("first", "second"), start=1):
                await pilot.press(*prompt, "enter")
                await wait_for(pilot, lambda n=n: app.turns >= n, 10, prompt)
            await pilot.press("f2")
            await pilot.pause()
            assert panel.display and len(panel.points) == 2
            shown = " ".join(
                str(panel.query_one(f"#session-{name}").content)
                for name in ("latency", "energy", "speed", "machine")
            )
            for part in ("latency", "median", "(2 requests)", "tokens/s", "J per output", "CPU"):
                assert part in shown, part
            assert panel.query_one("#latency-spark").data == [p.latency_s for p in panel.points]

    asyncio.run(scenario())
