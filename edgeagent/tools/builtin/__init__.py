"""The built-in tools: files, notes, calculator, system status, time and http_get."""

from __future__ import annotations

import dataclasses

from edgeagent.tools.builtin.files import make_file_tools
from edgeagent.tools.builtin.notes import make_notes_tools
from edgeagent.tools.builtin.system import make_system_tools
from edgeagent.tools.builtin.web import make_web_tools
from edgeagent.tools.context import ToolContext
from edgeagent.tools.registry import Tool

BUILTIN_NAMES: tuple[str, ...] = (
    "list_dir",
    "read_file",
    "search_files",
    "file_info",
    "write_file",
    "add_note",
    "search_notes",
    "list_notes",
    "calculator",
    "current_time",
    "system_status",
    "http_get",
)


def make_builtin_tools(context: ToolContext) -> list[Tool]:
    """Every built-in tool, closed over ``context``, in ``BUILTIN_NAMES`` order."""
    made = [
        *make_file_tools(context),
        *make_notes_tools(context),
        *make_system_tools(context),
        *make_web_tools(context),
    ]
    return [dataclasses.replace(t, source="builtin") for t in made]


__all__ = ["BUILTIN_NAMES", "make_builtin_tools"]
