"""SVG snapshots of the app's main screens at 80x24 and 120x40 (pytest-textual-snapshot).

Only screens whose content does not change from run to run: no latency, energy or clock is
drawn in them (those are checked as text in test_app*.py). After a deliberate change to the
look, review the new pictures and run ``pytest tests/ui/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeagent.config import load_settings
from edgeagent.testing import FakeModel
from edgeagent.ui.app import make_app

SIZES = [(80, 24), (120, 40)]


def app_for(tmp_path):
    """The app on a scripted model, with settings that draw the same everywhere."""
    settings = load_settings(
        home=tmp_path / "home",
        allowed_roots=(Path("/tmp"),),
        models_dir=tmp_path / "models",
        offline=True,
    )
    return make_app(settings, model=FakeModel())


async def until_ready(pilot) -> None:
    app = pilot.app
    for _ in range(200):
        if app.agent is not None and not app.busy:
            break
        await pilot.pause(0.05)
    app.query_one("#prompt").cursor_blink = False
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_main_screen(snap_compare, tmp_path, size):
    assert snap_compare(app_for(tmp_path), terminal_size=size, run_before=until_ready)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_help_screen(snap_compare, tmp_path, size):
    async def open_help(pilot) -> None:
        await until_ready(pilot)
        await pilot.press("f1")
        await pilot.pause()

    assert snap_compare(app_for(tmp_path), terminal_size=size, run_before=open_help)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_settings_screen(snap_compare, tmp_path, size):
    async def open_settings(pilot) -> None:
        await until_ready(pilot)
        await pilot.press("ctrl+s")
        await pilot.pause()
        for field in pilot.app.screen.query("Input"):
            field.cursor_blink = False
        await pilot.pause()

    assert snap_compare(app_for(tmp_path), terminal_size=size, run_before=open_settings)
