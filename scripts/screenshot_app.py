"""Regenerate docs/tui.svg: the app at 100x32 on a real GGUF, one request that needs a tool.

python scripts/screenshot_app.py PATH/TO/SmolLM2-135M-Instruct.Q4_1.gguf
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from edgeagent.config import load_settings
from edgeagent.ui.app import make_app

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "Read notes.txt: what is the launch code?"


async def take(model: str, out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "files"
        folder.mkdir()
        (folder / "notes.txt").write_text("Launch code: 4242. Dentist on Friday at 9:30.\n")
        settings = load_settings(
            model=model, home=Path(tmp) / "home", allowed_roots=(folder,), offline=True
        )
        app = make_app(settings)
        async with app.run_test(size=(100, 32)) as pilot:
            deadline = time.monotonic() + 120
            while app.agent is None or app.busy:
                if time.monotonic() > deadline:
                    raise SystemExit("the model did not load in 120 s")
                await pilot.pause(0.2)
            await pilot.press(*PROMPT, "enter")
            while app.turns < 1:
                if time.monotonic() > deadline + 120:
                    raise SystemExit("the request did not finish")
                await pilot.pause(0.2)
            await pilot.pause(0.5)
            app.query_one("#prompt").cursor_blink = False
            out.write_text(app.export_screenshot(title="edgeagent"))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    target = ROOT / "docs" / "tui.svg"
    asyncio.run(take(sys.argv[1], target))
    print(f"wrote {target}")
