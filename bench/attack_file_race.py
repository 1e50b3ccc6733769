"""Attack the file tools with a symlink swap race and count escapes from the allowed root.

Usage: python bench/attack_file_race.py [--seconds 10] [--thread] [--json]

Layout (in a fresh temporary folder): ``root/`` is the allowed root; ``root/sub/`` is a real
folder holding ``data.txt`` (short text) and ``root/lnk`` is a symlink to ``outside/``, which
holds a ``data.txt`` of a different size whose text contains ``OUTSIDE-SECRET`` and a file
``outside-only.txt``. An attacker (a separate process by default, a thread with ``--thread``)
exchanges ``root/sub`` and ``root/lnk`` atomically in a loop with Linux ``renameat2(...,
RENAME_EXCHANGE)`` (plain renames elsewhere), so ``root/sub`` is sometimes the real folder and
sometimes a symlink pointing outside. Meanwhile each tool runs in a loop for ``--seconds``,
called directly (``Tool.call``: the tool's own checks, no validators in front), and every
result is checked for outside content:

- ``read_file sub/data.txt``: the output contains ``OUTSIDE-SECRET``;
- ``file_info sub/data.txt``: the size reported is the outside file's size;
- ``list_dir sub``: the output names ``outside-only.txt``;
- ``search_files SECRET in sub``: a result line contains ``OUTSIDE-SECRET``;
- ``write_file sub/wN.txt``: a new file appeared in ``outside/`` (counted, then removed);
- ``write_file sub/data.txt overwrite``: ``outside/data.txt`` changed or a new file appeared
  in ``outside/`` (counted, then restored).

A call that raises an edgeagent error counts as refused; any other exception is counted
separately (``untyped``). Prints tries, ok, refused, untyped and escapes per tool.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeagent.config import load_settings  # noqa: E402
from edgeagent.errors import EdgeAgentError  # noqa: E402
from edgeagent.tools.builtin.files import make_file_tools  # noqa: E402
from edgeagent.tools.context import ToolContext  # noqa: E402

RENAME_EXCHANGE = 2
AT_FDCWD = -100
SYS_RENAMEAT2 = {"x86_64": 316, "aarch64": 276, "arm64": 276}
INSIDE_TEXT = "inside text\n"
OUTSIDE_TEXT = "OUTSIDE-SECRET " * 40 + "\n"


def renameat2_exchange() -> Callable[[bytes, bytes], int] | None:
    """A function exchanging two paths atomically (Linux renameat2), or None if unavailable."""
    if sys.platform != "linux":
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    func = getattr(libc, "renameat2", None)
    if func is not None:
        func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
        func.argtypes += [ctypes.c_uint]
        return lambda a, b: func(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)
    number = SYS_RENAMEAT2.get(platform.machine())
    if number is None:
        return None
    syscall = libc.syscall
    return lambda a, b: syscall(number, AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)


def swap_loop(root: str, stop: object, counter: object) -> None:
    """Exchange ``root/sub`` and ``root/lnk`` until ``stop`` is set; count swaps."""
    sub, lnk = os.path.join(root, "sub").encode(), os.path.join(root, "lnk").encode()
    exchange = renameat2_exchange()
    spare = os.path.join(root, "spare")
    swaps = 0
    while not stop.is_set():  # type: ignore[attr-defined]
        for _ in range(200):
            if exchange is not None:
                exchange(sub, lnk)
            else:  # not atomic: sub is briefly missing, still a window for a link
                try:
                    os.rename(sub, spare)
                    os.rename(lnk, sub)
                    os.rename(spare, lnk)
                except OSError:
                    pass
            swaps += 1
    counter.value = swaps  # type: ignore[attr-defined]


def make_layout(base: Path) -> tuple[Path, Path]:
    """Create root/sub/data.txt, root/lnk -> outside, outside/{data.txt,outside-only.txt}."""
    root, outside = base / "root", base / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (root / "sub" / "data.txt").write_text(INSIDE_TEXT, "utf-8")
    (outside / "data.txt").write_text(OUTSIDE_TEXT, "utf-8")
    (outside / "outside-only.txt").write_text("OUTSIDE-SECRET\n", "utf-8")
    (root / "lnk").symlink_to(outside, target_is_directory=True)
    return root.resolve(), outside.resolve()


class Outside:
    """Watches the outside folder: new files and changes to data.txt are escapes (then undone)."""

    def __init__(self, outside: Path) -> None:
        self.outside = outside
        self.names = {p.name for p in outside.iterdir()}

    def escapes(self) -> int:
        found = 0
        for path in self.outside.iterdir():
            if path.name not in self.names:
                found += 1
                path.unlink(missing_ok=True)
        data = self.outside / "data.txt"
        if not data.is_file() or data.read_text("utf-8") != OUTSIDE_TEXT:
            found += 1
            data.unlink(missing_ok=True)
            data.write_text(OUTSIDE_TEXT, "utf-8")
        return found


def attack(seconds: float, use_thread: bool) -> dict:
    """Run the race against every tool for ``seconds`` each; tries and escapes per tool."""
    with tempfile.TemporaryDirectory(prefix="edgeagent-race-") as tmp:
        root, outside = make_layout(Path(tmp))
        context = ToolContext.from_settings(load_settings(allowed_roots=(root,)))
        tools = {t.name: t for t in make_file_tools(context)}
        watcher = Outside(outside)
        outside_size = len(OUTSIDE_TEXT.encode())

        def leaked_text(out: object, marker: str = "OUTSIDE-SECRET") -> int:
            return int(marker in str(out))

        cases: list[tuple[str, str, Callable[[int], dict], Callable[[object], int]]] = [
            ("read_file", "read_file", lambda i: {"path": "sub/data.txt"}, leaked_text),
            (
                "file_info",
                "file_info",
                lambda i: {"path": "sub/data.txt"},
                lambda out: int(isinstance(out, dict) and out.get("size_bytes") == outside_size),
            ),
            (
                "list_dir",
                "list_dir",
                lambda i: {"path": "sub"},
                lambda out: leaked_text(out, "outside-only"),
            ),
            (
                "search_files",
                "search_files",
                lambda i: {"query": "SECRET", "path": "sub"},
                leaked_text,  # a hit line shows OUTSIDE-SECRET; the echoed query does not
            ),
            (
                "write_file",
                "write_file",
                lambda i: {"path": f"sub/w{i}.txt", "content": "x"},
                lambda out: 0,
            ),
            (
                "write_file(overwrite)",
                "write_file",
                lambda i: {"path": "sub/data.txt", "content": INSIDE_TEXT, "overwrite": True},
                lambda out: 0,
            ),
        ]
        results = {}
        for label, name, make_args, leaked in cases:
            if use_thread:
                stop: object = threading.Event()
                counter: object = type("Counter", (), {"value": 0})()
                attacker: object = threading.Thread(
                    target=swap_loop, args=(str(root), stop, counter), daemon=True
                )
            else:
                ctx = multiprocessing.get_context("fork")
                stop, counter = ctx.Event(), ctx.Value("q", 0)
                attacker = ctx.Process(target=swap_loop, args=(str(root), stop, counter))
            attacker.start()  # type: ignore[attr-defined]
            row = {"tries": 0, "ok": 0, "refused": 0, "untyped": 0, "escapes": 0}
            untyped: set[str] = set()
            deadline = time.monotonic() + seconds
            try:
                while time.monotonic() < deadline:
                    i = row["tries"]
                    row["tries"] += 1
                    try:
                        out = tools[name].call(make_args(i))
                        row["ok"] += 1
                        row["escapes"] += leaked(out)
                    except EdgeAgentError:
                        row["refused"] += 1
                    except Exception as exc:
                        row["untyped"] += 1
                        untyped.add(f"{type(exc).__name__}: {exc}"[:120])
                    if name == "write_file":
                        row["escapes"] += watcher.escapes()
            finally:
                stop.set()  # type: ignore[attr-defined]
                attacker.join()  # type: ignore[attr-defined]
            # the attacker may stop in either state: put the real folder back at root/sub
            if (root / "sub").is_symlink():
                os.rename(root / "sub", root / "spare")
                os.rename(root / "lnk", root / "sub")
                os.rename(root / "spare", root / "lnk")
            row["escapes"] += watcher.escapes()
            row["swaps"] = counter.value  # type: ignore[attr-defined]
            row["untyped_examples"] = sorted(untyped)[:3]
            results[label] = row
        return {
            "seconds_per_tool": seconds,
            "attacker": "thread" if use_thread else "process",
            "atomic_exchange": renameat2_exchange() is not None,
            "tools": results,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per tool")
    parser.add_argument("--thread", action="store_true", help="attacker in a thread")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    report = attack(args.seconds, args.thread)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"{args.seconds:g} s per tool, attacker: {report['attacker']}, "
        f"atomic exchange: {report['atomic_exchange']}"
    )
    print(f"{'tool':<22} {'tries':>7} {'ok':>7} {'refused':>8} {'untyped':>8} {'escapes':>8}")
    for label, row in report["tools"].items():
        print(
            f"{label:<22} {row['tries']:>7} {row['ok']:>7} {row['refused']:>8} "
            f"{row['untyped']:>8} {row['escapes']:>8}"
        )
        for example in row["untyped_examples"]:
            print(f"    untyped: {example}")


if __name__ == "__main__":
    main()
