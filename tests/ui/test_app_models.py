"""Models in the app: the first-run picker, offline limits, a pull with progress that Escape
stops, and switching the model of a running conversation (real tiny model where one loads)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from edgeagent.config import load_settings
from edgeagent.testing import FakeModel
from edgeagent.ui.app import make_app
from edgeagent.ui.screens.models import ModelPicker
from tests.conftest import SMOLLM_ID, TEST_MODELS_DIR
from tests.ui.test_app import SIZE, wait_for


def settings_for(tmp_path, **extra):
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    values = {"max_tokens": 24, "max_steps": 2, "n_threads": 1, "n_ctx": 2048, **extra}
    return load_settings(home=tmp_path / "home", allowed_roots=(root,), **values)


def pick(app, model_id: str) -> None:
    """Highlight ``model_id`` in the open picker."""
    listing = app.screen.query_one("#models-list")
    ids = [listing.get_option_at_index(i).id for i in range(listing.option_count)]
    listing.highlighted = ids.index(model_id)


@pytest.mark.model
def test_first_run_offers_the_models_that_fit_and_remembers_the_pick(smollm_path, tmp_path):
    settings = settings_for(tmp_path, models_dir=TEST_MODELS_DIR)

    async def scenario() -> None:
        app = make_app(settings, first_run=True)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert isinstance(app.screen, ModelPicker) and app.agent is None
            picker = app.screen
            assert picker.choices and all("fits" in c.detail or c.installed for c in picker.choices)
            installed = [c for c in picker.choices if c.installed]
            assert SMOLLM_ID in {c.id for c in installed}
            pick(app, SMOLLM_ID)
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.agent is not None and not app.busy, 90, "load")
            assert app.agent.model_name == smollm_path.name
            assert app.focused is app.query_one("#prompt")

    asyncio.run(scenario())
    assert f'model = "{SMOLLM_ID}"' in (settings.home / "config.toml").read_text()


def test_offline_only_installed_models_can_be_picked_and_it_says_why(tmp_path):
    settings = settings_for(tmp_path, models_dir=tmp_path / "empty", offline=True)

    async def scenario() -> None:
        app = make_app(settings, model=FakeModel())
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.agent is not None, 10, "the session")
            app.push_screen(ModelPicker(settings))
            await pilot.pause()
            picker = app.screen
            assert picker.choices and not any(c.available for c in picker.choices)
            assert all("offline: cannot be pulled now" in c.detail for c in picker.choices)
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, ModelPicker)

    asyncio.run(scenario())


def test_a_pull_shows_its_progress_and_escape_stops_it(tmp_path, monkeypatch):
    """The download itself is tested against local servers (test_download.py); here a pull
    that never ends shows that the picker draws progress and that Escape stops it."""
    from edgeagent.runtime import download

    stopped = threading.Event()

    def endless_pull(entry, settings, progress=None, **kwargs):
        done = 0
        try:
            while True:
                done += 1_000_000
                progress(done, entry.size_bytes)
                time.sleep(0.02)
        except BaseException:
            stopped.set()
            raise

    monkeypatch.setattr(download, "pull_model", endless_pull)
    settings = settings_for(tmp_path, models_dir=tmp_path / "empty")

    async def scenario() -> None:
        app = make_app(settings, model=FakeModel())
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.agent is not None, 10, "the session")
            app.push_screen(ModelPicker(settings))
            await pilot.pause()
            picker = app.screen
            target = next(c for c in picker.choices if not c.installed)
            pick(app, target.id)
            await pilot.press("enter")
            bar = picker.query_one("#models-progress")
            await wait_for(pilot, lambda: (bar.progress or 0) > 0, 10, "progress")
            assert picker.pulling == target.id and bar.display
            await pilot.press("escape")
            await wait_for(pilot, lambda: picker.pulling is None, 10, "the stop")
            assert stopped.is_set() and isinstance(app.screen, ModelPicker)
            status = str(picker.query_one("#models-status").content)
            assert "not pulled: the download was stopped" in status
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, ModelPicker)

    asyncio.run(scenario())


@pytest.mark.model
def test_switching_the_model_keeps_the_conversation(smollm_path, tmp_path):
    settings = settings_for(tmp_path, models_dir=TEST_MODELS_DIR)
    fake = FakeModel(["Hello from the fake."])

    async def scenario() -> None:
        app = make_app(settings, model=fake)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.agent is not None and not app.busy, 10, "session")
            await pilot.press(*"Hi", "enter")
            await wait_for(pilot, lambda: app.turns >= 1, 10, "the turn")
            agent, history = app.agent, list(app.agent.history)
            await pilot.press("ctrl+o")
            await pilot.pause()
            assert isinstance(app.screen, ModelPicker)
            pick(app, SMOLLM_ID)
            await pilot.press("enter")
            await wait_for(pilot, lambda: not app.busy, 90, "the new model")
            assert app.agent is agent and agent.model is not fake
            assert agent.model_name == smollm_path.name and agent.history == history
            assert not fake.closed  # the app did not load it, so it is not the app's to close
            assert any("now using" in n for n in app.conversation.notices())

    asyncio.run(scenario())


def test_settings_are_checked_field_by_field_saved_and_used(tmp_path):
    from edgeagent.ui.screens.settings import SettingsScreen

    settings = settings_for(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    key = "sk-settings-SECRET-9911"

    async def scenario() -> None:
        app = make_app(settings, model=FakeModel(["Noted."]))
        async with app.run_test(size=(100, 40)) as pilot:
            await wait_for(pilot, lambda: app.agent is not None and not app.busy, 10, "session")
            await pilot.press("ctrl+s")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, SettingsScreen)
            assert screen.query_one("#set-remote_api_key").password
            screen.query_one("#set-confidence_threshold").value = "2"
            screen.query_one("#set-allowed_roots").value = str(tmp_path / "nowhere")
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert isinstance(app.screen, SettingsScreen)  # nothing saved
            errors = {
                name: str(screen.query_one(f"#err-{name}").content)
                for name in ("confidence_threshold", "allowed_roots", "remote_url")
            }
            assert "from 0 to 1" in errors["confidence_threshold"]
            assert "not a folder" in errors["allowed_roots"] and errors["remote_url"] == ""
            assert not (settings.home / "config.toml").exists()
            screen.query_one("#set-confidence_threshold").value = "0.7"
            screen.query_one("#set-allowed_roots").value = str(other)
            screen.query_one("#set-remote_api_key").value = key
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert not isinstance(app.screen, SettingsScreen)
            agent = app.agent
            assert agent.settings.confidence_threshold == 0.7
            assert agent.context.allowed_roots == (other.resolve(),)
            assert agent.settings.remote_api_key == key
            await pilot.press(*f"remember {key}", "enter")
            await wait_for(pilot, lambda: app.turns >= 1, 10, "the turn")
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert app.screen.query_one("#set-remote_api_key").value == ""  # never shown back
            await pilot.press("escape")

    asyncio.run(scenario())
    config = settings.home / "config.toml"
    text = config.read_text()
    assert "confidence_threshold = 0.7" in text and key in text
    assert config.stat().st_mode & 0o077 == 0  # the key's file is the owner's only
    for path in settings.home.glob("*.db*"):
        assert key.encode() not in path.read_bytes()  # scrubbed from the history


def test_first_run_offline_with_nothing_installed_says_what_to_do(tmp_path):
    """No GGUF anywhere: the picker offers nothing it cannot deliver, Escape takes the
    default, and the default's absence is said with how to get it (nothing hangs)."""
    settings = settings_for(tmp_path, models_dir=tmp_path / "empty", offline=True)

    async def scenario() -> None:
        app = make_app(settings, first_run=True)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            picker = app.screen
            assert isinstance(picker, ModelPicker) and "Welcome" in app.export_screenshot()
            assert not any(c.available for c in picker.choices)
            await pilot.press("escape")
            await wait_for(pilot, lambda: not app.busy, 20, "the load to fail")
            notices = app.conversation.notices()
            assert notices[-1].startswith("could not load the model")
            assert "no model" in app.status_bar.plain
            assert not (settings.home / "config.toml").exists()  # nothing was picked

    asyncio.run(scenario())
