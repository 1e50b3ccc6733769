"""The file tools under attack: symlink swap races, hard links, links out, special files, leaks.

Each race test runs one tool in a loop for ``RACE_SECONDS`` while a thread exchanges a folder
inside the root with a symlink to an outside folder (Linux ``renameat2(RENAME_EXCHANGE)``), and
checks that nothing outside was read, created or changed and that only edgeagent's typed errors
came out. Tools are called with ``Tool.call`` (no validators in front): the tool itself must hold.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import platform
import socket
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from edgeagent.config import load_settings
from edgeagent.errors import EdgeAgentError, ToolExecutionError, ToolValidationError
from edgeagent.tools import safe_fs
from edgeagent.tools.builtin.files import make_file_tools
from edgeagent.tools.context import ToolContext
from edgeagent.tools.registry import Tool
from tests.helpers import make_tree

RACE_SECONDS = 1.5
RENAME_EXCHANGE = 2
AT_FDCWD = -100
SYS_RENAMEAT2 = {"x86_64": 316, "aarch64": 276}
INSIDE = "inside text\n"
SECRET = "OUTSIDE-SECRET " * 20 + "\n"


def _exchange() -> Callable[[bytes, bytes], int] | None:
    """Atomic exchange of two paths (renameat2 or its raw syscall), None if unavailable."""
    if sys.platform != "linux":
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    func = getattr(libc, "renameat2", None)
    if func is not None:
        return lambda a, b: func(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)
    number = SYS_RENAMEAT2.get(platform.machine())
    if number is None:
        return None
    return lambda a, b: libc.syscall(number, AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)


@contextmanager
def swapping(a: Path, b: Path) -> Iterator[dict]:
    """A thread exchanging ``a`` and ``b`` until the block ends; yields {"swaps": n}."""
    if sys.platform != "linux":
        pytest.skip("the swap race uses Linux renameat2; macOS runs the same descriptor code")
    exchange = _exchange()
    spare = a.with_name(a.name + ".spare")
    stop = threading.Event()
    counts = {"swaps": 0}

    def loop() -> None:
        while not stop.is_set():
            for _ in range(100):
                if exchange is not None:
                    if exchange(bytes(a), bytes(b)) == 0:
                        counts["swaps"] += 1
                else:  # not atomic, still leaves windows where ``a`` is the link
                    try:
                        os.rename(a, spare)
                        os.rename(b, a)
                        os.rename(spare, b)
                        counts["swaps"] += 1
                    except OSError:
                        pass

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield counts
    finally:
        stop.set()
        thread.join(5)
    if a.is_symlink():  # put the real thing back at ``a``
        os.rename(a, spare)
        os.rename(b, a)
        os.rename(spare, b)


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file below ``folder``: content and mode."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mode)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    return make_tree(
        tmp_path / "outside", {"data.txt": SECRET, "outside-only.txt": SECRET, "secret.txt": SECRET}
    )


@pytest.fixture
def root(tmp_path: Path, outside: Path) -> Path:
    r = make_tree(tmp_path / "root", {"sub/data.txt": INSIDE, "notes.txt": "plain notes\n"})
    (r / "lnk").symlink_to(outside, target_is_directory=True)
    return r


def tools_for(root: Path, **settings: object) -> dict[str, Tool]:
    context = ToolContext.from_settings(load_settings(allowed_roots=(root,), **settings))
    return {t.name: t for t in make_file_tools(context)}


@pytest.fixture
def tools(root: Path) -> dict[str, Tool]:
    return tools_for(root)


# --- (a) and (e): the swap race -----------------------------------------------------------------

RACES = {
    "read_file": ("read_file", lambda i: {"path": "sub/data.txt"}),
    "file_info": ("file_info", lambda i: {"path": "sub/data.txt"}),
    "list_dir": ("list_dir", lambda i: {"path": "sub"}),
    "search_files": ("search_files", lambda i: {"query": "secret", "path": "sub"}),
    "search_files_root": ("search_files", lambda i: {"query": "secret"}),
    "write_file": ("write_file", lambda i: {"path": f"sub/new{i}.txt", "content": "x"}),
    "write_file_deep": ("write_file", lambda i: {"path": f"sub/d{i}/f.txt", "content": "x"}),
    "write_file_overwrite": (
        "write_file",
        lambda i: {"path": "sub/data.txt", "content": INSIDE, "overwrite": True},
    ),
}


def leaked(out: object) -> bool:
    """Outside content, an outside name, or (file_info) the outside file's size."""
    if isinstance(out, dict) and out.get("size_bytes") == len(SECRET):
        return True
    text = json.dumps(out) if isinstance(out, dict) else str(out)
    return "OUTSIDE-SECRET" in text or "outside-only" in text


@pytest.mark.parametrize("case", list(RACES))
def test_folder_swapped_for_a_symlink_never_leaks(
    case: str, root: Path, outside: Path, tools: dict[str, Tool]
) -> None:
    name, make_args = RACES[case]
    before = snapshot(outside)
    outcomes = {"ok": 0, "refused": 0}
    escapes: list[object] = []
    with swapping(root / "sub", root / "lnk") as counts:
        deadline = time.monotonic() + RACE_SECONDS
        i = 0
        while time.monotonic() < deadline:
            i += 1
            try:
                out = tools[name].call(make_args(i))
            except EdgeAgentError:  # anything else fails the test
                outcomes["refused"] += 1
                continue
            outcomes["ok"] += 1
            if leaked(out):
                escapes.append(out)
    assert escapes == []
    assert snapshot(outside) == before  # nothing created, truncated or replaced outside
    assert sorted(p.name for p in outside.iterdir()) == sorted(before)
    assert counts["swaps"] > 10, counts  # the attacker really ran
    assert outcomes["ok"] > 0, outcomes
    if case != "search_files_root":  # the root search skips the link: it has nothing to refuse
        assert outcomes["refused"] > 0, outcomes  # both states were seen: the race was live


@pytest.mark.parametrize("case", ["read_file", "file_info", "write_file_overwrite"])
def test_file_swapped_for_a_symlink_never_leaks(
    case: str, root: Path, outside: Path, tools: dict[str, Tool]
) -> None:
    (root / "sub" / "flink").symlink_to(outside / "data.txt")
    name, make_args = RACES[case]
    before = snapshot(outside)
    with swapping(root / "sub" / "data.txt", root / "sub" / "flink") as counts:
        deadline = time.monotonic() + RACE_SECONDS / 2
        i = 0
        while time.monotonic() < deadline:
            i += 1
            try:
                out = tools[name].call(make_args(i))
            except EdgeAgentError:
                continue
            assert not leaked(out), out
    assert snapshot(outside) == before
    assert counts["swaps"] > 10


def test_a_fooled_pre_check_is_still_caught_by_the_walk(
    root: Path, outside: Path, tools: dict[str, Tool], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deterministic form of the race: the name check said 'inside', the walk finds a link."""
    monkeypatch.setattr(safe_fs, "resolve_inside_roots", lambda path, roots: root / path)
    before = snapshot(outside)
    for name, args in [
        ("read_file", {"path": "lnk/data.txt"}),
        ("file_info", {"path": "lnk/data.txt"}),
        ("list_dir", {"path": "lnk"}),
        ("search_files", {"query": "secret", "path": "lnk"}),
        ("write_file", {"path": "lnk/planted.txt", "content": "x"}),
        ("write_file", {"path": "lnk/data.txt", "content": "x", "overwrite": True}),
        ("write_file", {"path": "lnk/deeper/planted.txt", "content": "x"}),
    ]:
        with pytest.raises(ToolValidationError, match="outside the allowed roots"):
            tools[name].call(args)
    assert snapshot(outside) == before


# --- (b) hard links -----------------------------------------------------------------------------


def test_hard_link_to_an_outside_file_is_refused(
    root: Path, outside: Path, tools: dict[str, Tool]
) -> None:
    os.link(outside / "secret.txt", root / "hl.txt")
    with pytest.raises(ToolExecutionError, match="hard link") as info:
        tools["read_file"].call({"path": "hl.txt"})
    assert info.value.hint and "allow_hardlinks" in info.value.hint
    found = tools["search_files"].call({"query": "secret"})
    assert "OUTSIDE" not in found
    assert found.endswith("[skipped 1 hard-linked file; set allow_hardlinks=true to search them]")
    assert "plain" in tools["search_files"].call({"query": "plain"})  # others still searched
    meta = tools["file_info"].call({"path": "hl.txt"})
    assert meta["type"] == "file" and meta["text"] is None and meta["hard_links"] == 2
    assert meta["size_bytes"] == len(SECRET)  # metadata is fine; content is not read


def test_hard_links_are_read_when_allowed(root: Path, outside: Path) -> None:
    os.link(outside / "secret.txt", root / "hl.txt")
    tools = tools_for(root, allow_hardlinks=True)
    assert tools["read_file"].call({"path": "hl.txt"}) == SECRET
    assert "hl.txt:1: OUTSIDE-SECRET" in tools["search_files"].call({"query": "secret"})
    assert tools["file_info"].call({"path": "hl.txt"})["text"] is True


def test_overwriting_a_hard_link_never_writes_through_it(
    root: Path, outside: Path, tools: dict[str, Tool]
) -> None:
    os.link(outside / "secret.txt", root / "hl.txt")
    tools["write_file"].call({"path": "hl.txt", "content": "mine", "overwrite": True})
    assert (root / "hl.txt").read_text("utf-8") == "mine"
    assert (outside / "secret.txt").read_text("utf-8") == SECRET


# --- (c) symlinks -------------------------------------------------------------------------------


def test_symlinks_that_stay_inside_are_followed(root: Path, tools: dict[str, Tool]) -> None:
    (root / "alias.txt").symlink_to("sub/data.txt")
    (root / "absolute.txt").symlink_to(root / "sub" / "data.txt")
    (root / "docs").symlink_to("sub", target_is_directory=True)
    (root / "sub" / "back.txt").symlink_to("../alias.txt")  # .. that stays inside, two hops
    for path in ("alias.txt", "absolute.txt", "docs/data.txt", "sub/back.txt"):
        assert tools["read_file"].call({"path": path}) == INSIDE, path
    assert tools["list_dir"].call({"path": "docs"}).startswith("sub: ")
    assert tools["file_info"].call({"path": "alias.txt"})["path"] == "sub/data.txt"
    assert "alias.txt:1: inside text" in tools["search_files"].call({"query": "inside"})
    (root / "later.txt").symlink_to("sub/created.txt")  # dangling, but pointing inside
    tools["write_file"].call({"path": "later.txt", "content": "made"})
    assert (root / "sub" / "created.txt").read_text("utf-8") == "made"


@pytest.mark.parametrize(
    ("name", "target"),
    [
        ("out.txt", "outside/secret.txt"),  # made absolute below
        ("up", ".."),
        ("sub/up.txt", "../../outside/secret.txt"),
        ("loop", "loop"),
        ("ping", "pong"),
    ],
)
def test_symlinks_that_leave_or_loop_are_refused(
    name: str, target: str, root: Path, outside: Path, tools: dict[str, Tool]
) -> None:
    if target.startswith("outside/"):
        target = str(outside.parent / target)
    (root / name).symlink_to(target)
    if name == "ping":
        (root / "pong").symlink_to("ping")
    path = f"{name}/secret.txt" if name == "up" else name
    for tool, args in [
        ("read_file", {"path": path}),
        ("file_info", {"path": path}),
        ("write_file", {"path": path, "content": "x", "overwrite": True}),
    ]:
        with pytest.raises(ToolValidationError):
            tools[tool].call(args)
    assert "OUTSIDE" not in tools["search_files"].call({"query": "secret"})
    assert (outside / "secret.txt").read_text("utf-8") == SECRET


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        (["lnk", "secret.txt"], "outside the allowed roots"),
        (["..", "outside", "secret.txt"], "above its allowed root"),
        (["sub", "..", "..", "x"], "above its allowed root"),
        (["loop", "x"], "more than 40 symlinks"),
        (["abs-up"], "above its allowed root"),
        (["abs-out"], "outside the allowed roots"),
    ],
)
def test_the_walk_alone_refuses_escapes(root: Path, parts: list[str], message: str) -> None:
    """safe_fs without the name pre-check: the descriptor walk is the guarantee."""
    (root / "loop").symlink_to("loop")
    (root / "abs-up").symlink_to(f"{root}/../outside/secret.txt")  # textually inside, then ..
    (root / "abs-out").symlink_to(f"{root}-evil/secret.txt")  # a sibling sharing the prefix
    with safe_fs.RootDir(root) as top, pytest.raises(ToolValidationError, match=message):
        top.locate(parts, "/".join(parts))


# --- (d) special files --------------------------------------------------------------------------


def _within(seconds: float, func: Callable[[], object]) -> object:
    """Run ``func`` in a thread; fail if it has not returned within ``seconds`` (a hang)."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = func()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the tool hung on a special file"
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("value")


def test_fifo_is_refused_without_hanging(root: Path, tools: dict[str, Tool]) -> None:
    os.mkfifo(root / "pipe")
    with pytest.raises(ToolExecutionError, match="FIFO"):
        _within(5, lambda: tools["read_file"].call({"path": "pipe"}))
    info = _within(5, lambda: tools["file_info"].call({"path": "pipe"}))
    assert isinstance(info, dict) and info["type"] == "other" and "FIFO" in info["kind"]
    assert "plain" in str(_within(5, lambda: tools["search_files"].call({"query": "plain"})))
    assert "pipe" in str(_within(5, lambda: tools["list_dir"].call({})))
    with pytest.raises(ToolExecutionError, match="FIFO"):
        _within(
            5, lambda: tools["write_file"].call({"path": "pipe", "content": "x", "overwrite": True})
        )
    assert stat.S_ISFIFO((root / "pipe").lstat().st_mode)


def test_fifo_swapped_in_after_the_lstat_does_not_block(root: Path) -> None:
    """The window between lstat and open: O_NONBLOCK opens the FIFO at once, fstat refuses it."""
    os.mkfifo(root / "pipe")
    regular = os.stat(root / "notes.txt")
    with safe_fs.RootDir(root) as top, pytest.raises(ToolExecutionError, match="replaced"):
        _within(
            5, lambda: safe_fs.open_regular(top.fd, "pipe", regular, "pipe", allow_hardlinks=False)
        )


def test_devices_and_sockets_are_refused(root: Path, tools: dict[str, Tool]) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.bind(str(root / "sock"))
        except OSError as exc:  # path too long for AF_UNIX on some machines
            pytest.skip(f"cannot bind a unix socket here: {exc}")
        with pytest.raises(ToolExecutionError, match="socket"):
            _within(5, lambda: tools["read_file"].call({"path": "sock"}))
        assert tools["file_info"].call({"path": "sock"})["kind"] == "socket"
    (root / "zero").symlink_to("/dev/zero")
    with pytest.raises(ToolValidationError, match="outside the allowed roots"):
        tools["read_file"].call({"path": "zero"})
    try:
        os.mknod(root / "dev0", stat.S_IFCHR | 0o600, os.makedev(1, 5))  # what /dev/zero is
    except (PermissionError, AttributeError):
        return  # only root can make device nodes
    with pytest.raises(ToolExecutionError, match="character device"):
        _within(5, lambda: tools["read_file"].call({"path": "dev0"}))
    info = tools["file_info"].call({"path": "dev0"})
    assert info["type"] == "other" and info["kind"] == "character device"


# --- (e) writes ---------------------------------------------------------------------------------


def test_write_keeps_the_mode_and_create_refuses_an_existing_name(
    root: Path, outside: Path, tools: dict[str, Tool]
) -> None:
    (root / "notes.txt").chmod(0o600)
    tools["write_file"].call({"path": "notes.txt", "content": "new", "overwrite": True})
    assert (root / "notes.txt").read_text("utf-8") == "new"
    assert stat.S_IMODE((root / "notes.txt").stat().st_mode) == 0o600
    with pytest.raises(ToolExecutionError, match="already exists"):
        tools["write_file"].call({"path": "notes.txt", "content": "other"})
    assert (root / "notes.txt").read_text("utf-8") == "new"
    assert sorted(p.name for p in root.iterdir()) == ["lnk", "notes.txt", "sub"]  # no temp left


def test_exclusive_create_never_follows_a_dangling_link(root: Path, outside: Path) -> None:
    (root / "trap.txt").symlink_to(outside / "planted.txt")
    with safe_fs.RootDir(root) as top:
        place = safe_fs.Location(os.dup(top.fd), "trap.txt", None, ("trap.txt",))
        with place, pytest.raises(FileExistsError):
            safe_fs.create_file(place, b"x", "trap.txt")
    assert not (outside / "planted.txt").exists()


def test_write_refuses_a_parent_that_links_out(
    root: Path, outside: Path, tools: dict[str, Tool]
) -> None:
    with pytest.raises(ToolValidationError, match="outside the allowed roots"):
        tools["write_file"].call({"path": "lnk/new/deep.txt", "content": "x"})
    assert not (outside / "new").exists()


# --- platforms and descriptors ------------------------------------------------------------------


def test_without_dir_fd_support_the_tools_refuse(
    root: Path, tools: dict[str, Tool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "supports_dir_fd", set())  # what Windows reports
    for name, args in [
        ("read_file", {"path": "notes.txt"}),
        ("list_dir", {}),
        ("search_files", {"query": "plain"}),
        ("file_info", {"path": "notes.txt"}),
        ("write_file", {"path": "new.txt", "content": "x"}),
    ]:
        with pytest.raises(ToolExecutionError, match="directory descriptors") as info:
            tools[name].call(args)
        assert info.value.hint and "Linux or macOS" in info.value.hint
    assert not (root / "new.txt").exists()


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
def test_no_descriptor_leaks(root: Path, outside: Path, tools: dict[str, Tool]) -> None:
    os.link(outside / "secret.txt", root / "hl.txt")
    os.mkfifo(root / "pipe")
    (root / "loop").symlink_to("loop")
    (root / "bin.dat").write_bytes(b"\x00\x01" * 10)
    calls = [
        ("read_file", {"path": "sub/data.txt"}),
        ("read_file", {"path": "hl.txt"}),
        ("read_file", {"path": "pipe"}),
        ("read_file", {"path": "bin.dat"}),
        ("read_file", {"path": "missing.txt"}),
        ("read_file", {"path": "lnk/secret.txt"}),
        ("read_file", {"path": "loop"}),
        ("list_dir", {"path": "sub"}),
        ("search_files", {"query": "text"}),
        ("search_files", {"query": "text", "max_results": 1}),
        ("file_info", {"path": "sub"}),
        ("file_info", {"path": "hl.txt"}),
        ("file_info", {"path": "sub/data.txt"}),
        ("write_file", {"path": "w/x.txt", "content": "x", "overwrite": True}),
        ("write_file", {"path": "w/x.txt", "content": "x"}),
        ("write_file", {"path": "sub", "content": "x"}),
    ]
    for name, args in calls:  # warm up (imports, caches)
        with suppress(EdgeAgentError):
            tools[name].call(args)
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        for name, args in calls:
            with suppress(EdgeAgentError):
                tools[name].call(args)
    assert len(os.listdir("/proc/self/fd")) == before
