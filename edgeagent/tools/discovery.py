"""Tool discovery: user tools files (``--tools FILE.py``), plugins, and the combined registry."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import logging
import sys
import traceback
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from edgeagent.errors import ToolDefinitionError
from edgeagent.tools.registry import Tool, ToolRegistry, as_tool, marked_tool
from edgeagent.tools.signature import clip

ENTRY_POINT_GROUP = "edgeagent.tools"
IMPORT_TIMEOUT_S = 10.0
MAX_TOOLS_FILE_BYTES = 2 * 1024 * 1024

logger = logging.getLogger("edgeagent.tools")


def _import_error(path: Path, exc: BaseException) -> ToolDefinitionError:
    if isinstance(exc, SyntaxError):
        return ToolDefinitionError(
            f"{path}:{exc.lineno}: SyntaxError: {exc.msg}",
            hint="fix the syntax error in the tools file",
        )
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename) == path:
            line = frame.lineno
    where = f"{path}:{line}" if line else str(path)
    return ToolDefinitionError(
        f"{where}: {type(exc).__name__}: {clip(str(exc), 300)}",
        hint=f"the tools file failed to import; run 'python {path}' to see the full traceback",
    )


class _ImportTookTooLong(BaseException):
    """Raised inside a tools file's import when it runs past the timeout."""


def _check_source_file(path: Path) -> None:
    """A tools file must be a regular file of reasonable size (no FIFO, no device)."""
    import stat

    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise ToolDefinitionError(
            f"tools file {path} is not a regular file", hint="pass a .py file"
        )
    if info.st_size > MAX_TOOLS_FILE_BYTES:
        raise ToolDefinitionError(
            f"tools file {path} is {info.st_size:,} bytes (more than {MAX_TOOLS_FILE_BYTES:,})",
            hint="split it, or package the tools as a plugin",
        )


def _too_long(path: Path, seconds: float) -> ToolDefinitionError:
    return ToolDefinitionError(
        f"importing it took longer than {seconds:g} s",
        hint="a tools file should only define tools at import; move slow work into the tools",
    )


def _run_with_timeout(run: Any, seconds: float, path: Path) -> None:
    """Run ``run()`` (a module import) in a daemon thread and stop waiting after ``seconds``.

    A thread cannot ignore its interruption the way it can ignore a signal: on timeout an
    exception is raised inside it (between two bytecodes, a few times in case the import
    catches it); if it is still alive after that (stuck in C code) it is abandoned, and the
    error says so. Any exception the import raises, ``KeyboardInterrupt`` and other
    ``BaseException`` subclasses included, is the file's own and is handed back here.
    """
    import ctypes
    import threading

    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            run()
            outcome.append(None)
        except _ImportTookTooLong:
            outcome.append(None)
        except BaseException as exc:  # handed to the caller's thread
            outcome.append(exc)

    worker = threading.Thread(target=target, name=f"import {path.name}", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        for _ in range(10):
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(worker.ident or 0), ctypes.py_object(_ImportTookTooLong)
            )
            worker.join(0.1)
            if not worker.is_alive():
                break
        raise _too_long(path, seconds)
    if outcome and outcome[0] is not None:
        raise outcome[0]


def load_tools_file(path: str | Path) -> list[Tool]:
    """Import a Python file by path and return its tools, with ``source="file:/abs/path"``.

    If the module defines ``TOOLS`` (a list of anything ``as_tool`` accepts), that list is the
    file's tools, in its order. Otherwise the tools are the module's ``@tool`` functions defined
    in the file and its module-level Tool instances, in definition order.
    """
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise ToolDefinitionError(
            f"tools file {path} does not exist", hint="pass the path of a .py file"
        )
    if path.suffix != ".py":
        raise ToolDefinitionError(f"tools file {path} is not a .py file", hint="pass a Python file")
    module_name = "edgeagent_user_tools_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - .py files always have a loader
        raise ToolDefinitionError(f"cannot import {path}")
    _check_source_file(path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        _run_with_timeout(lambda: spec.loader.exec_module(module), IMPORT_TIMEOUT_S, path)
    except ToolDefinitionError as exc:
        sys.modules.pop(module_name, None)
        raise ToolDefinitionError(f"{path}: {exc.message}", hint=exc.hint) from exc
    except BaseException as exc:  # SystemExit, GeneratorExit, a BaseException subclass...
        sys.modules.pop(module_name, None)
        raise _import_error(path, exc) from exc

    exported = getattr(module, "TOOLS", None)
    if exported is not None:
        if not isinstance(exported, (list, tuple)):
            raise ToolDefinitionError(
                f"{path}: TOOLS must be a list, got {type(exported).__name__}",
                hint="TOOLS = [my_function, ...]",
            )
        items = list(exported)
    else:
        items = []
        for value in vars(module).values():
            if isinstance(value, Tool) or (
                marked_tool(value) is not None and getattr(value, "__module__", None) == module_name
            ):
                items.append(value)
    tools: list[Tool] = []
    seen: set[int] = set()
    for item in items:
        try:
            made = as_tool(item)
        except ToolDefinitionError as exc:
            raise ToolDefinitionError(f"{path}: {exc.message}", hint=exc.hint) from exc
        if id(made) in seen:
            continue
        seen.add(id(made))
        tools.append(dataclasses.replace(made, source=f"file:{path}"))
    if not tools:
        raise ToolDefinitionError(
            f"no tools found in {path}",
            hint="decorate functions with @tool (from edgeagent.tools.registry import tool) "
            "or define TOOLS = [...]",
        )
    return tools


def load_entry_point_tools(
    group: str = ENTRY_POINT_GROUP,
) -> tuple[list[Tool], list[ToolDefinitionError]]:
    """Tools from installed plugins: entry points in ``group`` resolving to a Tool, a function
    (decorated or plain), a pydantic model class, an OpenAI dict, or a list of them.

    A broken plugin does not stop the others: its error is logged as a warning and returned.
    """
    from importlib.metadata import entry_points

    tools: list[Tool] = []
    errors: list[ToolDefinitionError] = []
    seen: set[tuple[str, str]] = set()
    for ep in entry_points(group=group):
        if (ep.name, ep.value) in seen:
            continue
        seen.add((ep.name, ep.value))
        dist = getattr(ep, "dist", None)
        dist_name = dist.name if dist is not None else ep.value.split(":", 1)[0]
        label = f"tool plugin {ep.name!r} ({ep.value}) from {dist_name}"
        try:
            loaded = ep.load()
        except Exception as exc:
            errors.append(
                ToolDefinitionError(
                    f"{label} failed to load: {type(exc).__name__}: {clip(str(exc), 300)}",
                    hint=f"fix or uninstall the package {dist_name}",
                )
            )
            continue
        for item in loaded if isinstance(loaded, (list, tuple)) else [loaded]:
            try:
                made = as_tool(item)
            except ToolDefinitionError as exc:
                errors.append(ToolDefinitionError(f"{label}: {exc.message}", hint=exc.hint))
                continue
            tools.append(dataclasses.replace(made, source=f"entrypoint:{dist_name}"))
    for err in errors:
        logger.warning("%s", err)
    return tools, errors


def build_registry(
    builtin: Iterable[Any] = (),
    tools_files: Sequence[str | Path] = (),
    entry_points: bool = True,
) -> ToolRegistry:
    """Built-ins (marked ``source="builtin"``), then plugin tools, then tools files.

    A plugin tool whose name is taken is skipped and recorded in ``registry.load_errors``
    (with plugin load failures); a tools file whose tool name is taken raises
    ToolDefinitionError: the user asked for that file explicitly.
    """
    registry = ToolRegistry(dataclasses.replace(as_tool(b), source="builtin") for b in builtin)
    if entry_points:
        found, errors = load_entry_point_tools()
        for made in found:
            if made.name in registry:
                err = ToolDefinitionError(
                    f"tool {made.name!r} from {made.source} is skipped: the name is already "
                    f"defined by {registry.get(made.name).source}",
                    hint="rename the plugin's tool",
                )
                logger.warning("%s", err)
                errors.append(err)
                continue
            registry.add(made)
        registry.load_errors.extend(errors)
    for path in tools_files:
        for made in load_tools_file(path):
            if made.name in registry:
                raise ToolDefinitionError(
                    f"{path}: tool {made.name!r} is already defined "
                    f"(source: {registry.get(made.name).source})",
                    hint="rename it, e.g. @tool(name='my_" + made.name + "')",
                )
            registry.add(made)
    return registry
