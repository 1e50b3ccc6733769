"""Package layout: `python -m edgeagent`, a light `--help`, and the py.typed marker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import edgeagent
from edgeagent import cli as cli_mod

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
COMMANDS = ("adapt", "chat", "doctor", "eval", "grammar", "logs", "models", "run", "stats", "tools")


def test_python_dash_m_lists_the_commands():
    done = subprocess.run(
        [sys.executable, "-m", "edgeagent", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: edgeagent ")
    commands = done.stdout.split("Commands:", 1)[1]
    listed = {line.split()[0] for line in commands.splitlines() if line.strip()}
    assert set(COMMANDS) <= listed, listed


def test_python_dash_m_keeps_the_exit_code():
    done = subprocess.run(
        [sys.executable, "-m", "edgeagent", "no-such-command"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 2 and "No such command" in done.stderr


def test_dunder_main_runs_the_console_script_entry_point():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, attr = scripts["edgeagent"].partition(":")
    assert (module, attr) == ("edgeagent.cli", "main")
    import edgeagent.__main__ as dunder_main

    assert dunder_main.main is cli_mod.main


def test_help_imports_no_heavy_dependency():
    code = (
        "import sys\n"
        "from edgeagent.cli import cli\n"
        "for args in (['--help'], ['run', '--help'], ['adapt', '--help'], ['models', '--help']):\n"
        "    code = cli.main(args, prog_name='edgeagent', standalone_mode=False)\n"
        "    assert code == 0, (args, code)\n"
        "heavy = ('llama_cpp', 'textual', 'torch', 'transformers', 'peft')\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    assert "Usage: edgeagent run" in done.stdout and "Usage: edgeagent adapt" in done.stdout


def test_py_typed_marker_is_in_the_package():
    marker = Path(edgeagent.__file__).parent / "py.typed"
    assert marker.is_file()
