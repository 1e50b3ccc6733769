"""File tools confined to the allowed roots: list_dir, read_file, search_files, file_info, write_file.

Every path is checked twice: by the tool's semantic validators before it runs (friendly errors,
status "invalid"), and inside the tool by ``edgeagent.tools.safe_fs``: ``resolve_inside_roots``
picks the root, then the path is walked from that root's directory descriptor one component at a
time with ``O_NOFOLLOW``, and the tool works on the descriptors it opened. A folder swapped for a
symlink pointing outside, between the check and the use, cannot redirect a read or a write.
Only regular files are read or written; hard links are refused unless
``settings.allow_hardlinks``. Where directory descriptors are missing (Windows) the tools refuse.
"""

from __future__ import annotations

import datetime
import fnmatch
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from pydantic import Field

from edgeagent.errors import ToolExecutionError, ToolValidationError
from edgeagent.tools import safe_fs
from edgeagent.tools.context import ToolContext
from edgeagent.tools.policy import context_roots, must_exist, path_validator, resolve_inside_roots
from edgeagent.tools.registry import Tool, tool_from_function
from edgeagent.tools.safe_fs import Location, RootDir

MAX_LIST_ENTRIES = 200
SNIFF_BYTES = 8192
SEARCH_MAX_FILE_BYTES = 2_000_000
SEARCH_MAX_FILES = 5_000
SEARCH_TIME_BUDGET_S = 10.0
SEARCH_LINE_CHARS = 200
SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "__pycache__",
        "node_modules",
        ".venv",
        "venv",
        ".tox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
    }
)

PathArg = Annotated[str, Field(min_length=1, max_length=512)]


def _is_binary(head: bytes) -> bool:
    """NUL bytes in the first block mean binary (what git and grep assume too)."""
    return b"\x00" in head


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


def _not_overwriting(arguments: dict, context: Any) -> None:
    """write_file: the target must not be a folder, nor an existing file unless overwrite."""
    path = resolve_inside_roots(arguments["path"], context_roots(context))
    if path.is_dir():
        raise ToolValidationError(
            f"argument 'path': {arguments['path']!r} is a folder", hint="pass a file path"
        )
    if path.exists() and not arguments.get("overwrite"):
        raise ToolValidationError(
            f"argument 'path': {arguments['path']!r} already exists",
            hint="pass overwrite=true to replace it, or choose another name",
        )


@contextmanager
def _located(
    context: ToolContext, path: str, *, create_dirs: bool = False
) -> Iterator[tuple[RootDir, Location]]:
    """The pre-check, then the walk: the open root and where ``path`` ends beneath it."""
    safe_fs.ensure_supported()
    root, parts = safe_fs.split_in_roots(path, context_roots(context))
    with (
        RootDir(root) as top,
        top.locate_in(parts, path, create_dirs=create_dirs) as place,
        safe_fs.os_errors(path),
    ):
        yield top, place


def _read_text(fd: int, path: str, max_chars: int, size: int) -> str:
    """The UTF-8 text of an open regular file, cut at ``max_chars``."""
    if _is_binary(safe_fs.read_at_most(fd, SNIFF_BYTES)):
        raise ToolExecutionError(
            f"{path!r} is a binary file, not text", hint="use file_info to see what it is"
        )
    os.lseek(fd, 0, os.SEEK_SET)
    try:
        with open(fd, encoding="utf-8", errors="strict", newline="", closefd=False) as fh:
            text = fh.read(max_chars + 1)
    except UnicodeDecodeError as exc:
        raise ToolExecutionError(
            f"{path!r} is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from exc
    if len(text) > max_chars:
        return f"{text[:max_chars]}\n[... file continues; {size} bytes in total]"
    return text


Tree = Iterator[tuple[tuple[str, ...], int, list[tuple[str, os.stat_result]]]]


@contextmanager
def _tree(place: Location, path: str) -> Iterator[tuple[tuple[str, ...], Tree]]:
    """What search_files reads: the file at ``place`` alone or the tree of the folder there."""
    if place.name is not None and place.st is not None and not stat.S_ISDIR(place.st.st_mode):
        yield place.parts[:-1], iter([((), place.dir_fd, [(place.name, place.st)])])
        return
    folder = safe_fs.open_folder(place, path)
    steps = safe_fs.walk(folder, SKIP_DIRS)
    try:
        yield place.parts, steps
    finally:
        steps.close()
        os.close(folder)


def _search_read(
    top: RootDir, dir_fd: int, name: str, info: os.stat_result, shown: str, allow_links: bool
) -> bytes | None:
    """One search candidate's bytes; None if skipped (links out, special, too big)."""
    try:
        if stat.S_ISLNK(info.st_mode):  # followed by a fresh walk from the root, or skipped
            with top.locate_in(shown.split("/"), shown) as target:
                if target.name is None or target.st is None:
                    return None
                return _search_read(top, target.dir_fd, target.name, target.st, shown, allow_links)
        if not stat.S_ISREG(info.st_mode) or info.st_size > SEARCH_MAX_FILE_BYTES:
            return None
        fd, _ = safe_fs.open_regular(dir_fd, name, info, shown, allow_hardlinks=allow_links)
        try:
            data = safe_fs.read_at_most(fd, SEARCH_MAX_FILE_BYTES + 1)
        finally:
            os.close(fd)
    except safe_fs.HardLinkRefused:  # goes up: the caller counts it
        raise
    except (OSError, ToolValidationError, ToolExecutionError):
        return None
    return None if len(data) > SEARCH_MAX_FILE_BYTES else data


def make_file_tools(context: ToolContext) -> list[Tool]:
    """The file tools, closed over ``context`` (its allowed roots)."""

    def allow_hardlinks() -> bool:
        return bool(getattr(context.settings, "allow_hardlinks", False))

    def list_dir(path: PathArg = ".") -> str:
        """List a folder: subfolders end with '/', files show their size.

        Args:
            path: folder to list, relative to the working folder
        """
        with _located(context, path) as (_, place):
            folder = safe_fs.open_folder(place, path)
            try:
                found = safe_fs.entries(folder)
            finally:
                os.close(folder)
        found.sort(key=lambda e: (not (e[1] and stat.S_ISDIR(e[1].st_mode)), e[0].lower()))
        lines = []
        for name, info in found[:MAX_LIST_ENTRIES]:
            if info is None:
                continue
            if stat.S_ISLNK(info.st_mode):
                lines.append(f"{name} (link)")
            elif stat.S_ISDIR(info.st_mode):
                lines.append(f"{name}/")
            else:
                lines.append(f"{name} ({_human(info.st_size)})")
        if len(found) > MAX_LIST_ENTRIES:
            lines.append(f"[... {len(found) - MAX_LIST_ENTRIES} more entries]")
        header = f"{place.shown}: {len(found)} entries"
        return "\n".join([header, *lines]) if lines else f"{header} (empty)"

    # at least 200 characters: a small model asks for 10 and then cannot answer from them
    def read_file(path: PathArg, max_chars: Annotated[int, Field(ge=200, le=20_000)] = 4000) -> str:
        """Read a text file.

        Args:
            path: file to read
            max_chars: read at most this many characters
        """
        with _located(context, path) as (_, place):
            if place.name is None:
                raise ToolExecutionError(f"{path!r} is not a file", hint="pass the path of a file")
            fd, info = safe_fs.open_regular(
                place.dir_fd, place.name, place.st, path, allow_hardlinks=allow_hardlinks()
            )
            try:
                return _read_text(fd, path, max_chars, info.st_size)
            finally:
                os.close(fd)

    def search_files(
        query: Annotated[str, Field(min_length=1, max_length=200)],
        path: PathArg = ".",
        glob: Annotated[str, Field(min_length=1, max_length=100)] = "*",
        max_results: Annotated[int, Field(ge=1, le=200)] = 20,
    ) -> str:
        """Search text files for a phrase (case-insensitive); returns file:line: text.

        Args:
            query: text to look for
            path: folder to search in
            glob: file name pattern, e.g. *.py
            max_results: stop after this many matches
        """
        needle = query.lower()
        pattern = glob if "/" in glob else None
        deadline = time.monotonic() + SEARCH_TIME_BUDGET_S
        hits: list[str] = []
        scanned = linked = 0
        stopped = ""
        with _located(context, path) as (top, place), _tree(place, path) as (base, tree):
            for rel, dir_fd, files in tree:
                if time.monotonic() > deadline:  # also bounds walking folders of non-matches
                    stopped = f"[stopped after {SEARCH_TIME_BUDGET_S:g} s, {scanned} files scanned]"
                    break
                for name, info in files:
                    shown = "/".join((*base, *rel, name))
                    if not (
                        fnmatch.fnmatch(shown, pattern) if pattern else fnmatch.fnmatch(name, glob)
                    ):
                        continue
                    if scanned >= SEARCH_MAX_FILES or time.monotonic() > deadline:
                        stopped = f"[stopped after scanning {scanned} files]"
                        break
                    try:
                        data = _search_read(top, dir_fd, name, info, shown, allow_hardlinks())
                    except safe_fs.HardLinkRefused:
                        linked += 1
                        continue
                    if data is None:
                        continue
                    scanned += 1
                    if _is_binary(data[:SNIFF_BYTES]):
                        continue
                    text = data.decode("utf-8", errors="replace")
                    if needle not in text.lower():
                        continue
                    for number, line in enumerate(text.splitlines(), 1):
                        if needle in line.lower():
                            line = " ".join(line.split())
                            if len(line) > SEARCH_LINE_CHARS:
                                line = line[:SEARCH_LINE_CHARS] + "..."
                            hits.append(f"{shown}:{number}: {line}")
                            if len(hits) >= max_results:
                                stopped = f"[stopped at {max_results} results]"
                                break
                    if stopped:
                        break
                if stopped:
                    break
        notes = [stopped] if stopped else []
        if linked:
            notes.append(
                f"[skipped {linked} hard-linked file{'s' * (linked != 1)}; "
                "set allow_hardlinks=true to search them]"
            )
        if not hits:
            return f"no matches for {query!r} in {scanned} files" + "".join(f" {n}" for n in notes)
        return "\n".join(hits + notes)

    def file_info(path: PathArg) -> dict:
        """Size, type and modification time of a file or folder.

        Args:
            path: file or folder
        """
        with _located(context, path) as (_, place):
            info = place.st
            if info is None:
                raise ToolExecutionError(
                    f"{path!r} does not exist",
                    hint="check the name; list_dir shows what is in a folder",
                )
            mode = info.st_mode
            kind = "folder" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"
            out: dict[str, Any] = {
                "path": place.shown,
                "type": kind,
                "size_bytes": info.st_size,
                "modified": datetime.datetime.fromtimestamp(info.st_mtime)
                .astimezone()
                .isoformat(timespec="seconds"),
            }
            if kind == "other":
                out["kind"] = safe_fs.kind_of(mode)  # looked at with lstat only, never opened
            elif kind == "folder":
                folder = safe_fs.open_folder(place, path)
                try:
                    out["entries"] = len(safe_fs.entries(folder))
                finally:
                    os.close(folder)
            elif info.st_nlink > 1 and not allow_hardlinks():
                out["text"] = None
                out["hard_links"] = info.st_nlink
                out["note"] = "a hard link: content not read (set allow_hardlinks=true to allow)"
            else:
                assert place.name is not None
                fd, _ = safe_fs.open_regular(
                    place.dir_fd, place.name, info, path, allow_hardlinks=allow_hardlinks()
                )
                try:
                    out["text"] = not _is_binary(safe_fs.read_at_most(fd, SNIFF_BYTES))
                finally:
                    os.close(fd)
            return out

    def write_file(
        path: PathArg,
        content: Annotated[str, Field(max_length=20_000)],
        overwrite: bool = False,
    ) -> str:
        """Write text to a file (creates folders; replaces a file only with overwrite=true).

        Args:
            path: file to write
            content: the text to write
            overwrite: replace the file if it exists
        """
        data = content.encode("utf-8")
        with _located(context, path, create_dirs=True) as (_, place):
            info = place.st
            if place.name is None or (info is not None and stat.S_ISDIR(info.st_mode)):
                raise ToolExecutionError(f"{path!r} is a folder", hint="pass a file path")
            if info is not None and not stat.S_ISREG(info.st_mode):
                safe_fs.refuse_unless_regular(info, path)
            if info is not None and overwrite:
                safe_fs.replace_file(place, data, stat.S_IMODE(info.st_mode), path)
            else:
                try:
                    safe_fs.create_file(place, data, path)
                except FileExistsError as exc:
                    raise ToolExecutionError(
                        f"{path!r} already exists", hint="pass overwrite=true to replace it"
                    ) from exc
            return f"wrote {len(content)} characters to {place.shown}"

    return [
        tool_from_function(
            list_dir, validators=(path_validator("path"), must_exist("path", kind="dir"))
        ),
        tool_from_function(
            read_file, validators=(path_validator("path"), must_exist("path", kind="file"))
        ),
        tool_from_function(search_files, validators=(path_validator("path"), must_exist("path"))),
        tool_from_function(file_info, validators=(path_validator("path"), must_exist("path"))),
        tool_from_function(
            write_file, risk="write", validators=(path_validator("path"), _not_overwriting)
        ),
    ]
