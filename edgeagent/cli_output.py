"""What the command line prints: terminal-safe text, JSON, byte sizes (shared by the CLI's
command groups and the app's model picker)."""

from __future__ import annotations

import json
import re

import click

# C0 controls but tab and newline, DEL, C1 controls, and bidi overrides/isolates: what a model,
# a remote or a file could use to rewrite the terminal (OSC 52 clipboard, title, screen clears)
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """``text`` with terminal control characters shown as ``\\uXXXX`` (valid inside JSON too)."""
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


def echo(message: object = "", *, err: bool = False) -> None:
    """click.echo of text made terminal-safe: everything the CLI prints goes through here."""
    click.echo(terminal_safe(str(message)), err=err)


def print_json(data) -> None:
    echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def human_bytes(size: int | float | None) -> str:
    """``98.3 MB`` (decimal units, as the catalog and `models list` give sizes)."""
    if size is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"
