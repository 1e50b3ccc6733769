"""File tools confined to the allowed roots: list_dir, read_file, search_files, file_info, write_file.

Every path is checked twice: by the tool's semantic validators before it runs, and again by
``resolve_inside_roots`` inside the tool, right before the disk is touched.
"""

from __future__ import annotations

import datetime
import fnmatch
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from edgeagent.errors import ToolExecutionError, ToolValidationError
from edgeagent.tools.context import ToolContext
from edgeagent.tools.policy import context_roots, must_exist, path_validator, resolve_inside_roots
from edgeagent.tools.registry import Tool, tool_from_function

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


def _display(path: Path, context: ToolContext) -> str:
    """``path`` relative to the root containing it (``.`` for the root itself)."""
    for root in context.allowed_roots:
        if path == root or path.is_relative_to(root):
            rel = path.relative_to(root).as_posix()
            return rel or "."
    return str(path)


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


def make_file_tools(context: ToolContext) -> list[Tool]:
    """The file tools, closed over ``context`` (its allowed roots)."""

    def resolve(path: str) -> Path:
        return resolve_inside_roots(path, context_roots(context))

    def list_dir(path: PathArg = ".") -> str:
        """List a folder: subfolders end with '/', files show their size.

        Args:
            path: folder to list, relative to the working folder
        """
        folder = resolve(path)
        if not folder.is_dir():
            raise ToolExecutionError(f"{path!r} is not a folder")
        entries = sorted(folder.iterdir(), key=lambda p: (not p.is_dir(), p.name.lower()))
        lines = []
        for entry in entries[:MAX_LIST_ENTRIES]:
            try:
                info = entry.lstat()
            except OSError:
                continue
            if stat.S_ISLNK(info.st_mode):
                lines.append(f"{entry.name} (link)")
            elif stat.S_ISDIR(info.st_mode):
                lines.append(f"{entry.name}/")
            else:
                lines.append(f"{entry.name} ({_human(info.st_size)})")
        if len(entries) > MAX_LIST_ENTRIES:
            lines.append(f"[... {len(entries) - MAX_LIST_ENTRIES} more entries]")
        header = f"{_display(folder, context)}: {len(entries)} entries"
        return "\n".join([header, *lines]) if lines else f"{header} (empty)"

    def read_file(path: PathArg, max_chars: Annotated[int, Field(ge=1, le=20_000)] = 4000) -> str:
        """Read a text file.

        Args:
            path: file to read
            max_chars: read at most this many characters
        """
        file = resolve(path)
        if not file.is_file():
            raise ToolExecutionError(f"{path!r} is not a file")
        with file.open("rb") as fh:
            head = fh.read(SNIFF_BYTES)
        if _is_binary(head):
            raise ToolExecutionError(
                f"{path!r} is a binary file, not text", hint="use file_info to see what it is"
            )
        try:
            with file.open("r", encoding="utf-8", errors="strict", newline="") as fh:
                text = fh.read(max_chars + 1)
        except UnicodeDecodeError as exc:
            raise ToolExecutionError(
                f"{path!r} is not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from exc
        if len(text) > max_chars:
            size = file.stat().st_size
            return f"{text[:max_chars]}\n[... file continues; {size} bytes in total]"
        return text

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
        folder = resolve(path)
        needle = query.lower()
        pattern = glob if "/" in glob else None
        deadline = time.monotonic() + SEARCH_TIME_BUDGET_S
        hits: list[str] = []
        scanned = 0
        stopped = ""
        walker = (
            [(str(folder.parent), [], [folder.name])]
            if folder.is_file()
            else os.walk(folder, followlinks=False)
        )
        for dirpath, dirnames, filenames in walker:
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            for name in sorted(filenames):
                full = Path(dirpath) / name
                shown = _display(full, context)
                if not (
                    fnmatch.fnmatch(shown, pattern) if pattern else fnmatch.fnmatch(name, glob)
                ):
                    continue
                if scanned >= SEARCH_MAX_FILES or time.monotonic() > deadline:
                    stopped = f"[stopped after scanning {scanned} files]"
                    break
                try:
                    real = resolve(str(full))  # a symlink pointing outside is skipped
                    if not real.is_file() or real.stat().st_size > SEARCH_MAX_FILE_BYTES:
                        continue
                    data = real.read_bytes()
                except (OSError, ToolValidationError):
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
        if not hits:
            return f"no matches for {query!r} in {scanned} files" + (
                f" {stopped}" if stopped else ""
            )
        return "\n".join(hits + ([stopped] if stopped else []))

    def file_info(path: PathArg) -> dict:
        """Size, type and modification time of a file or folder.

        Args:
            path: file or folder
        """
        target = resolve(path)
        info = target.stat()
        kind = "folder" if target.is_dir() else "file" if target.is_file() else "other"
        out: dict[str, Any] = {
            "path": _display(target, context),
            "type": kind,
            "size_bytes": info.st_size,
            "modified": datetime.datetime.fromtimestamp(info.st_mtime)
            .astimezone()
            .isoformat(timespec="seconds"),
        }
        if kind == "file":
            with target.open("rb") as fh:
                out["text"] = not _is_binary(fh.read(SNIFF_BYTES))
        elif kind == "folder":
            out["entries"] = sum(1 for _ in target.iterdir())
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
        target = resolve(path)
        if target.is_dir():
            raise ToolExecutionError(f"{path!r} is a folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        target = resolve(str(target))  # the parents may have been links: check again
        data = content.encode("utf-8")
        if not overwrite:
            try:
                with target.open("xb") as fh:
                    fh.write(data)
            except FileExistsError as exc:
                raise ToolExecutionError(
                    f"{path!r} already exists", hint="pass overwrite=true to replace it"
                ) from exc
        else:
            fd, tmp = tempfile.mkstemp(prefix=".edgeagent-", dir=target.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                if target.exists():
                    os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return f"wrote {len(content)} characters to {_display(target, context)}"

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
