"""The real app in a real terminal (tmux, 80x24) on the real tiny model: a request that needs a
tool, its card, the energy on screen, the conversation list after a restart, a clean quit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]


def tmux(*args: str) -> str:
    return subprocess.run(
        ["tmux", *args], capture_output=True, text=True, check=True, timeout=20
    ).stdout


def screen(session: str) -> str:
    return tmux("capture-pane", "-p", "-t", session)


def wait_for(session: str, what: str, timeout: float) -> str:
    """Poll the pane until ``what`` shows; fail with the screen if it does not."""
    deadline = time.monotonic() + timeout
    while True:
        shown = screen(session)
        if what in shown:
            return shown
        if time.monotonic() > deadline:
            raise AssertionError(f"{what!r} not on screen after {timeout:.0f} s:\n{shown}")
        time.sleep(0.3)


def start(session: str, env: dict, smollm_path) -> None:
    command = (
        f"{sys.executable} -m edgeagent chat --offline --model {smollm_path}; "
        "echo EXITED-$?; sleep 30"
    )
    exports = " ".join(f"{k}={v}" for k, v in env.items())
    tmux(
        "new-session",
        "-d",
        "-s",
        session,
        "-x",
        "80",
        "-y",
        "24",
        f"env {exports} sh -c '{command}'",
    )


def test_a_request_its_card_its_energy_and_a_clean_quit_at_80x24(smollm_path, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "notes.txt").write_text("The launch code is 4242.\n")
    env = {
        "EDGEAGENT_HOME": str(tmp_path / "home"),
        "EDGEAGENT_ALLOWED_ROOTS": str(root),
        "EDGEAGENT_MAX_TOKENS": "32",
        "EDGEAGENT_N_CTX": "2048",
        "TERM": "xterm-256color",
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    session = f"ea-{uuid.uuid4().hex[:8]}"
    start(session, env, smollm_path)
    try:
        wait_for(session, "ready", 90)
        tmux("send-keys", "-t", session, "Read the file notes.txt", "Enter")
        shown = wait_for(session, " J (", 120)  # the turn's meta line and the status bar
        assert "read_file" in shown and "network off" in shown
        assert "ran" in shown or "declined" in shown or "invalid" in shown
        tmux("send-keys", "-t", session, "C-q")
        assert "EXITED-0" in wait_for(session, "EXITED-", 30)
        # reopened: the conversation is in the list (Ctrl+B)
        tmux("kill-session", "-t", session)
        start(session, env, smollm_path)
        wait_for(session, "ready", 90)
        tmux("send-keys", "-t", session, "C-b")
        wait_for(session, "Read the file notes.txt", 20)
        tmux("send-keys", "-t", session, "Enter")
        wait_for(session, "resumed", 20)
        tmux("send-keys", "-t", session, "C-q")
        assert "EXITED-0" in wait_for(session, "EXITED-", 30)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True, check=False)
