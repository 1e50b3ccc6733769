"""Regenerate the committed grammars of the built-in tools from the compiler.

Writes ``grammars/builtin/<tool>.gbnf`` (each built-in tool's argument grammar) and
``grammars/envelope_builtin.gbnf`` (the tool-choice envelope over all of them, as the agent
builds it) and removes grammars of tools that no longer exist. Run from a source checkout::

    python scripts/regenerate_grammars.py [--out DIR]

``tests/unit/test_generated_grammars.py`` fails when the committed files are stale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the checkout's edgeagent, installed or not

from edgeagent.grammar.golden import (  # noqa: E402
    COMMAND,
    default_grammars_dir,
    render_grammar_files,
    write_grammar_files,
)


def builtin_tool_schemas() -> list[tuple[str, dict]]:
    """``(name, parameters)`` of every built-in tool, in ``BUILTIN_NAMES`` order."""
    from edgeagent.config import Settings
    from edgeagent.tools.builtin import make_builtin_tools
    from edgeagent.tools.context import ToolContext

    tools = make_builtin_tools(ToolContext(settings=Settings()))
    return [(t.name, t.parameters) for t in tools]


def render_builtin_grammars() -> dict[str, str]:
    """Relative path (under ``grammars/``) -> GBNF text, for every generated grammar file."""
    return render_grammar_files(builtin_tool_schemas())


def main(argv: list[str] | None = None) -> int:
    """Write the grammars (to ``--out DIR`` or the checkout's ``grammars/``); exit status."""
    parser = argparse.ArgumentParser(
        prog=COMMAND, description="Regenerate the committed grammars of the built-in tools."
    )
    parser.add_argument("--out", type=Path, default=None, help="grammars folder to write")
    args = parser.parse_args(argv)
    out = args.out or default_grammars_dir()
    if args.out is None and not out.is_dir():
        print(
            f"error: no grammars folder at {out} (this is not a source checkout)\n"
            "hint: pass --out DIR to write the grammars somewhere else",
            file=sys.stderr,
        )
        return 2
    for path in write_grammar_files(out, render_builtin_grammars()):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
