"""Reading untrusted input files and JSON with limits: size, nesting depth, regular files only.

A schema file, a tools file or a config may be a FIFO (opening it would block forever), a
device (``/dev/zero`` never ends), huge, or nested thousands of levels deep (Python's parser and
every recursive walker after it raise RecursionError). These helpers turn each of those into
one clear ``ConfigError`` before anything else reads the input.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from edgeagent.errors import ConfigError

MAX_JSON_BYTES = 4 * 1024 * 1024
MAX_JSON_DEPTH = 64


def json_depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0, ``[]`` is 1), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            deepest = max(deepest, depth)
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_json_limited(text: str | bytes, what: str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` that refuses nesting deeper than ``max_depth`` with a ConfigError."""
    too_deep = ConfigError(
        f"{what} is nested more than {max_depth} levels deep",
        "flatten it; tool schemas need only a few levels",
    )
    try:
        value = json.loads(text)
    except RecursionError:
        raise too_deep from None
    except (ValueError, UnicodeDecodeError) as exc:
        where = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        message = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise ConfigError(f"{what} is not JSON: {message}{where}", "fix the file") from None
    if json_depth(value) > max_depth:
        raise too_deep
    return value


def read_regular_file(path: str | os.PathLike[str], *, max_bytes: int, what: str = "") -> bytes:
    """The bytes of a regular file of at most ``max_bytes``; FIFOs, devices and folders refused.

    The file is opened non-blocking (a FIFO swapped in after the check cannot hang the read) and
    checked again on the open descriptor.
    """
    label = what or str(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ConfigError(f"cannot read {label}: {exc.strerror}", "check the path") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = (
                "a folder"
                if stat.S_ISDIR(info.st_mode)
                else "a FIFO"
                if stat.S_ISFIFO(info.st_mode)
                else "a device or socket"
            )
            raise ConfigError(f"{label} is {kind}, not a regular file", "pass a regular file")
        if info.st_size > max_bytes:
            raise ConfigError(
                f"{label} is {info.st_size:,} bytes, more than the {max_bytes:,} allowed",
                "pass a smaller file",
            )
        chunks, total = [], 0
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:  # the file grew while being read
                raise ConfigError(
                    f"{label} is more than the {max_bytes:,} bytes allowed", "pass a smaller file"
                )
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_json_file(
    path: str | Path, *, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH
) -> Any:
    """A JSON document from a regular file, within size and depth limits (ConfigError if not)."""
    data = read_regular_file(path, max_bytes=max_bytes)
    return parse_json_limited(data, str(path), max_depth=max_depth)
