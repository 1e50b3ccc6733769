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


# Everyday words for what each built-in does (agent.retrieval), beyond its name and description;
# "__named_file__"/"__named_dir__": the tool for a request that names an existing file / folder.
KEYWORDS: dict[str, tuple[str, ...]] = {
    "list_dir": (
        "__named_dir__",
        "ls",
        "directory",
        "contents",
        "folder",
        "files",
        "what is in",
        "inside",
    ),
    "read_file": (
        "__named_file__",
        "open",
        "show",
        "contents",
        "says",
        "say",
        "inside",
        "view",
        "cat",
        "what is",
    ),
    "search_files": ("find", "grep", "mention", "contain", "which file", "look for", "where"),
    "file_info": ("size", "big", "large", "bytes", "modified", "changed", "edited", "kind"),
    "write_file": ("write", "save", "create", "put", "store", "append", "make a file"),
    "add_note": ("remember", "note", "jot", "remind", "memo"),
    "search_notes": ("notes", "note", "noted", "remember", "memo"),
    "list_notes": ("notes", "note", "memo", "recent"),
    "calculator": (
        "__arithmetic__",
        "calculate",
        "compute",
        "sum",
        "total",
        "average",
        "percent",
        "multiply",
        "divide",
        "add up",
        "math",
    ),
    "current_time": (
        "time",
        "date",
        "day",
        "today",
        "now",
        "clock",
        "hour",
        "weekday",
        "month",
        "year",
        "tomorrow",
        "yesterday",
    ),
    "system_status": ("cpu", "memory", "ram", "battery", "load", "machine", "computer", "cores"),
    "http_get": ("url", "website", "web", "page", "fetch", "download", "http", "internet", "site"),
}

# Arguments that are a part of the request: a query, a note or a file's text is the user's words,
# a new file's path one the user named (agent.spans).
REQUEST_SPANS: dict[str, tuple[str, ...]] = {
    "search_files": ("query",),
    "search_notes": ("query",),
    "add_note": ("text",),
    "write_file": ("path:path", "content"),
    "calculator": ("expression:expression",),
}

# One worked example per built-in for the system prompt (settings.exemplars): requests written for
# the prompt, about files and facts that appear nowhere else (not the everyday suite's).
EXAMPLES: dict[str, tuple[tuple[str, dict], ...]] = {
    "list_dir": (("what's inside the photos folder?", {"path": "photos"}),),
    "read_file": (("open letters/draft.txt", {"path": "letters/draft.txt"}),),
    "search_files": (("which file talks about invoices?", {"query": "invoices"}),),
    "file_info": (("when was plan.odt last changed?", {"path": "plan.odt"}),),
    "write_file": (
        ("save 'see you at 6' in msg.txt", {"path": "msg.txt", "content": "see you at 6"}),
    ),
    "add_note": (
        ("note that the spare key is under the pot", {"text": "the spare key is under the pot"}),
    ),
    "search_notes": (("what did I note about the spare key?", {"query": "spare key"}),),
    "list_notes": (("show my notes", {}),),
    "calculator": (("what is 18 times 4?", {"expression": "18 * 4"}),),
    "current_time": (("what's the date today?", {}),),
    "system_status": (("how much memory is free?", {}),),
    "http_get": (("fetch https://example.org/news", {"url": "https://example.org/news"}),),
}

# Tools whose text output an answer quotes from (the lines it rests on, agent.answer.cite_lines).
CITED = frozenset({"read_file", "search_files", "search_notes", "list_notes", "http_get"})


def make_builtin_tools(context: ToolContext) -> list[Tool]:
    """Every built-in tool, closed over ``context``, in ``BUILTIN_NAMES`` order."""
    made = [
        *make_file_tools(context),
        *make_notes_tools(context),
        *make_system_tools(context),
        *make_web_tools(context),
    ]
    return [
        dataclasses.replace(
            t,
            source="builtin",
            keywords=KEYWORDS.get(t.name, ()),
            request_spans=REQUEST_SPANS.get(t.name, ()),
            examples=EXAMPLES.get(t.name, ()),
            cite=t.name in CITED,
        )
        for t in made
    ]


__all__ = ["BUILTIN_NAMES", "make_builtin_tools"]
