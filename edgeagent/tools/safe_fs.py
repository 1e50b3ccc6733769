"""Race-free file access beneath an allowed root, through directory descriptors.

``resolve_inside_roots`` checks a path by name, and a name can change between that check and
the moment the file is opened (a folder swapped for a symlink pointing outside). So the file
tools never open a checked path by name from the top. ``RootDir`` opens the allowed root once and
walks the rest one component at a time, each relative to the descriptor of the folder before it,
with ``O_NOFOLLOW`` (folders also with ``O_DIRECTORY``). Whatever the names point to by the time
each component is opened, the walk only ever stands in a folder it opened beneath the root.

Symlinks met on the way are followed by hand, component by component: the link is read with
``readlink(name, dir_fd=...)`` and its target spliced into the remaining components (at most
``MAX_LINK_HOPS`` links). A relative target continues from the folder holding the link; an
absolute target must lie textually inside the root being walked and continues from the root.
``..`` goes back to the folder the walk came from and may never go above the root. Anything that
would leave the root raises ToolValidationError naming the path.

Only regular files are read or written. Leaves are opened with ``O_NOFOLLOW | O_NONBLOCK |
O_NOCTTY`` after an ``lstat`` relative to the verified parent says they are regular files, and
the opened descriptor is checked again with ``fstat`` (same inode, still regular), so a FIFO
swapped in never blocks and a special file is never read (a device node swapped in at that very
instant is opened, then refused; making device nodes needs root). Hard links (``st_nlink > 1``) can point at
files outside the root, so readers refuse them unless the caller allows them.

Platforms: Linux and macOS have ``openat``, ``fstatat``, ``readlinkat``, ``mkdirat``,
``renameat``, ``unlinkat``, ``fdopendir``, ``O_NOFOLLOW`` and ``O_DIRECTORY``; this module is
the path on both. Windows has none of them (``os.open not in os.supports_dir_fd``): there
``ensure_supported`` raises ToolExecutionError and the file tools refuse to run rather than fall
back to opening by name. Linux's ``openat2(RESOLVE_BENEATH)`` would do the same walk in the
kernel; the portable walk is used everywhere so that Linux and macOS share one code path.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from edgeagent.errors import ToolExecutionError, ToolValidationError
from edgeagent.tools.policy import resolve_inside_roots

MAX_LINK_HOPS = 40
MAX_WALK_DEPTH = 64
MAX_NEW_FOLDERS = 256  # bounds the mkdir retries when someone keeps removing them
O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
O_NOCTTY = getattr(os, "O_NOCTTY", 0)
DIR_FLAGS = os.O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC
READ_FLAGS = os.O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC
CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC
TEMP_PREFIX = ".edgeagent-"
HARDLINK_HINT = (
    "hard links can point at files outside the allowed roots; "
    "set allow_hardlinks=true (EDGEAGENT_ALLOW_HARDLINKS) to allow them"
)
RETRY_HINT = "it changed while it was being opened; try again"


def unsupported_reason() -> str | None:
    """Why this platform cannot open files beneath a directory descriptor, or None if it can."""
    missing = [
        name
        for name, ok in (
            ("os.open(dir_fd=)", os.open in os.supports_dir_fd),
            ("os.stat(dir_fd=)", os.stat in os.supports_dir_fd),
            ("os.readlink(dir_fd=)", os.readlink in os.supports_dir_fd),
            ("os.mkdir(dir_fd=)", os.mkdir in os.supports_dir_fd),
            ("os.rename(dir_fd=)", os.rename in os.supports_dir_fd),
            ("os.unlink(dir_fd=)", os.unlink in os.supports_dir_fd),
            ("os.scandir(fd)", os.scandir in os.supports_fd),
            ("O_NOFOLLOW", bool(O_NOFOLLOW)),
            ("O_DIRECTORY", bool(O_DIRECTORY)),
        )
        if not ok
    ]
    return ", ".join(missing) or None


def ensure_supported() -> None:
    """Raise ToolExecutionError where the race-free walk is impossible (Windows)."""
    missing = unsupported_reason()
    if missing:
        raise ToolExecutionError(
            f"the file tools need directory descriptors (openat and friends), which this "
            f"platform lacks ({missing}); they refuse to run rather than open files by name, "
            f"which a symlink swap could redirect outside the allowed roots",
            hint="run edgeagent on Linux or macOS to use the file tools",
        )


def kind_of(mode: int) -> str:
    """A word for a file type: folder, file, symlink, FIFO, socket, device."""
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    return "special file"


def _parts(text: str) -> list[str]:
    return [p for p in text.split("/") if p not in ("", ".")]


def split_in_roots(path: str, roots: Iterable[Path]) -> tuple[Path, tuple[str, ...]]:
    """The pre-check: which allowed root ``path`` lies in and its components relative to it.

    ``resolve_inside_roots`` gives the friendly errors (outside the roots, NUL bytes, loops);
    its answer is only a hint of where to walk, the walk beneath the root's descriptor decides.
    """
    roots = tuple(roots)
    resolved = resolve_inside_roots(path, roots)
    for root in (Path(r).expanduser().resolve() for r in roots):
        if resolved == root or resolved.is_relative_to(root):
            return root, resolved.relative_to(root).parts
    raise ToolValidationError(  # pragma: no cover - resolve_inside_roots already refused it
        f"path {path!r} is outside the allowed roots", hint="use a path inside the allowed roots"
    )


@contextmanager
def os_errors(shown: str) -> Iterator[None]:
    """Turn an OSError into a ToolExecutionError naming the path."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ToolExecutionError(f"{shown!r} could not be used: {reason}", hint=RETRY_HINT) from exc


@dataclass
class Location:
    """Where a path ended: an open folder (owned), the leaf's name in it and the leaf's lstat.

    ``name`` is None when the path is the folder ``dir_fd`` itself (then ``st`` is its fstat);
    ``st`` is None when the leaf does not exist. ``parts`` is the path as walked, relative to
    the root (symlinks replaced by their targets).
    """

    dir_fd: int
    name: str | None
    st: os.stat_result | None
    parts: tuple[str, ...]

    @property
    def shown(self) -> str:
        """The walked path relative to its root, ``.`` for the root itself."""
        return "/".join(self.parts) or "."

    def close(self) -> None:
        """Close the folder descriptor (idempotent)."""
        if self.dir_fd >= 0:
            os.close(self.dir_fd)
            self.dir_fd = -1

    def __enter__(self) -> Location:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RootDir:
    """An allowed root held open as a directory descriptor; paths beneath it are walked from it."""

    def __init__(self, root: Path) -> None:
        ensure_supported()
        self.path = Path(root)
        try:
            self.fd = os.open(self.path, DIR_FLAGS)
        except OSError as exc:
            raise ToolExecutionError(
                f"the allowed root {self.path} cannot be opened as a folder: {exc.strerror}",
                hint="check that the allowed roots exist and are folders (not symlinks)",
            ) from exc

    def close(self) -> None:
        """Close the root descriptor (idempotent)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> RootDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _escape(self, shown: str, link: str, target: str) -> ToolValidationError:
        return ToolValidationError(
            f"path {shown!r} leads through the symlink {link!r} (-> {target!r}) to a place "
            f"outside the allowed roots ({self.path})",
            hint="use a path inside the allowed roots; symlinks may only point inside them",
        )

    def _absolute_target(self, target: str) -> list[str] | None:
        """The components of an absolute link target below this root, None if outside it."""
        root = str(self.path)
        if target == root:
            return []
        prefix = root.rstrip("/") + "/"
        return _parts(target[len(prefix) :]) if target.startswith(prefix) else None

    def locate(self, parts: Iterable[str], shown: str, *, create_dirs: bool = False) -> Location:
        """Walk ``parts`` from the root without ever leaving it; the caller closes the result.

        Every folder on the way is opened with ``O_NOFOLLOW | O_DIRECTORY`` relative to the one
        before it; symlinks are followed by hand (see the module docstring). With
        ``create_dirs`` missing folders before the leaf are created (``mkdir(dir_fd=)``) and
        then opened like the others. A missing leaf is not an error (``st`` is None).
        """
        pending = deque(p for p in parts if p not in ("", "."))
        stack: list[int] = []  # owned descriptors of the folders walked into, below the root
        names: list[str] = []
        hops = made = 0
        try:
            while pending:
                part = pending.popleft()
                if part == "..":
                    if not stack:
                        raise ToolValidationError(
                            f"path {shown!r} goes above its allowed root ({self.path})",
                            hint="use a path inside the allowed roots",
                        )
                    os.close(stack.pop())
                    names.pop()
                    continue
                here = stack[-1] if stack else self.fd
                where = "/".join([*names, part])
                try:
                    st = os.stat(part, dir_fd=here, follow_symlinks=False)
                except FileNotFoundError:
                    if not pending:
                        fd = stack.pop() if stack else os.dup(self.fd)
                        return Location(fd, part, None, (*names, part))
                    if not create_dirs or made >= MAX_NEW_FOLDERS:
                        raise ToolExecutionError(
                            f"{shown!r} does not exist ({where!r} is missing)",
                            hint="check the name; list_dir shows what is in a folder",
                        ) from None
                    made += 1
                    with suppress(FileExistsError):  # made meanwhile: looked at again below
                        os.mkdir(part, 0o777, dir_fd=here)
                    pending.appendleft(part)
                    continue
                if stat.S_ISLNK(st.st_mode):
                    hops += 1
                    if hops > MAX_LINK_HOPS:
                        raise ToolValidationError(
                            f"path {shown!r} goes through more than {MAX_LINK_HOPS} symlinks "
                            f"(a symlink loop at {where!r}?)",
                            hint="remove the loop or pass the real path",
                        )
                    target = os.readlink(part, dir_fd=here)
                    if target.startswith("/"):
                        inner = self._absolute_target(target)
                        if inner is None:
                            raise self._escape(shown, where, target)
                        while stack:
                            os.close(stack.pop())
                        names.clear()
                        pending.extendleft(reversed(inner))
                    else:
                        pending.extendleft(reversed(_parts(target)))
                    continue
                if not pending:
                    fd = stack.pop() if stack else os.dup(self.fd)
                    return Location(fd, part, st, (*names, part))
                if not stat.S_ISDIR(st.st_mode):
                    raise ToolExecutionError(
                        f"{shown!r} cannot be reached: {where!r} is a {kind_of(st.st_mode)}, "
                        "not a folder",
                        hint="check the path; list_dir shows what is in a folder",
                    )
                try:
                    fd = os.open(part, DIR_FLAGS, dir_fd=here)
                except OSError as exc:  # swapped for a symlink or a file since the lstat
                    raise ToolExecutionError(
                        f"{shown!r} cannot be reached: {where!r} could not be opened as a "
                        f"folder ({exc.strerror})",
                        hint=RETRY_HINT,
                    ) from exc
                stack.append(fd)
                names.append(part)
            fd = stack.pop() if stack else os.dup(self.fd)
            try:
                return Location(fd, None, os.fstat(fd), tuple(names))
            except BaseException:
                os.close(fd)
                raise
        finally:
            for fd in stack:
                os.close(fd)

    def locate_in(self, parts: Iterable[str], shown: str, **kw: bool) -> Location:
        """``locate`` with OSErrors turned into ToolExecutionErrors naming ``shown``."""
        with os_errors(shown):
            return self.locate(parts, shown, **kw)


class HardLinkRefused(ToolExecutionError):
    """A file with several names (hard links) was not read because they are not allowed."""


def refuse_unless_regular(st: os.stat_result | None, shown: str) -> os.stat_result:
    """Raise ToolExecutionError unless ``st`` is a regular file."""
    if st is None:
        raise ToolExecutionError(
            f"{shown!r} does not exist", hint="check the name; list_dir shows what is in a folder"
        )
    if stat.S_ISDIR(st.st_mode):
        raise ToolExecutionError(f"{shown!r} is not a file", hint="pass the path of a file")
    if not stat.S_ISREG(st.st_mode):
        raise ToolExecutionError(
            f"{shown!r} is a {kind_of(st.st_mode)}, not a regular file; only regular files "
            "are read or written",
            hint="pass the path of a regular file",
        )
    return st


def refuse_hardlink(st: os.stat_result, shown: str, allow_hardlinks: bool) -> None:
    """Raise ToolExecutionError if ``st`` has several names and hard links are not allowed."""
    if st.st_nlink > 1 and not allow_hardlinks:
        raise HardLinkRefused(
            f"{shown!r} is a hard link ({st.st_nlink} names for the same file), so it may be a "
            "file from outside the allowed roots; it was not read",
            hint=HARDLINK_HINT,
        )


def open_regular(
    dir_fd: int, name: str, st: os.stat_result | None, shown: str, *, allow_hardlinks: bool
) -> tuple[int, os.stat_result]:
    """Open the regular file ``name`` in ``dir_fd`` (lstat ``st``) for reading; caller closes.

    Refuses folders, special files and (unless allowed) hard links before opening; then opens
    with ``O_NOFOLLOW | O_NONBLOCK`` and checks the descriptor is the same regular file.
    """
    st = refuse_unless_regular(st, shown)
    refuse_hardlink(st, shown, allow_hardlinks)
    with os_errors(shown):
        fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (
            st.st_dev,
            st.st_ino,
        ):
            raise ToolExecutionError(f"{shown!r} was replaced while it was opened", hint=RETRY_HINT)
        refuse_hardlink(opened, shown, allow_hardlinks)
        return fd, opened
    except BaseException:
        os.close(fd)
        raise


def open_folder(location: Location, shown: str) -> int:
    """A new descriptor of the folder at ``location``; the caller closes it."""
    if location.name is None:
        return os.dup(location.dir_fd)
    st = location.st
    if st is None:
        raise ToolExecutionError(
            f"{shown!r} does not exist", hint="check the name; list_dir shows what is in a folder"
        )
    if not stat.S_ISDIR(st.st_mode):
        raise ToolExecutionError(f"{shown!r} is not a folder", hint="pass the path of a folder")
    with os_errors(shown):
        return os.open(location.name, DIR_FLAGS, dir_fd=location.dir_fd)


def read_at_most(fd: int, limit: int) -> bytes:
    """Up to ``limit`` bytes from the start of ``fd``."""
    os.lseek(fd, 0, os.SEEK_SET)
    chunks: list[bytes] = []
    left = limit
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def entries(dir_fd: int) -> list[tuple[str, os.stat_result | None]]:
    """The entries of a folder with their lstat (None if one vanished), never following links."""
    out: list[tuple[str, os.stat_result | None]] = []
    with os.scandir(dir_fd) as it:  # scandir duplicates the descriptor; ours stays open
        for entry in it:
            try:
                out.append((entry.name, entry.stat(follow_symlinks=False)))
            except OSError:
                out.append((entry.name, None))
    return out


def walk(
    top_fd: int, skip_dirs: Iterable[str] = (), max_depth: int = MAX_WALK_DEPTH
) -> Iterator[tuple[tuple[str, ...], int, list[tuple[str, os.stat_result]]]]:
    """Walk the tree below ``top_fd`` top-down, in name order, never following symlinks.

    Yields ``(relative folder parts, folder descriptor, [(name, lstat) of non-folders])``; the
    descriptor is valid until the next step. Subfolders are opened with ``O_NOFOLLOW |
    O_DIRECTORY`` relative to their parent (a folder swapped for a link or a FIFO is skipped,
    never followed or blocked on). ``os.fwalk`` is not used because it opens subfolders
    without ``O_NOFOLLOW``/``O_DIRECTORY`` (it compares inodes afterwards), so a folder swapped
    for a link to a FIFO would block it. Close the generator (``contextlib.closing``) when
    stopping early.
    """
    skip = frozenset(skip_dirs)
    yield from _walk(top_fd, (), 0, skip, max_depth)


def _walk(
    fd: int, rel: tuple[str, ...], depth: int, skip: frozenset[str], max_depth: int
) -> Iterator[tuple[tuple[str, ...], int, list[tuple[str, os.stat_result]]]]:
    folders: list[str] = []
    files: list[tuple[str, os.stat_result]] = []
    try:
        listed = sorted(entries(fd), key=lambda entry: entry[0])
    except OSError:
        return
    for name, st in listed:
        if st is None:
            continue
        if stat.S_ISDIR(st.st_mode):
            if name not in skip:
                folders.append(name)
        else:
            files.append((name, st))
    yield rel, fd, files
    if depth >= max_depth:
        return
    for name in folders:
        try:
            sub = os.open(name, DIR_FLAGS, dir_fd=fd)
        except OSError:
            continue
        try:
            yield from _walk(sub, (*rel, name), depth + 1, skip, max_depth)
        finally:
            os.close(sub)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def create_file(location: Location, data: bytes, shown: str) -> None:
    """Create the leaf of ``location`` with ``O_CREAT | O_EXCL | O_NOFOLLOW`` and write ``data``.

    Raises FileExistsError if anything (even a dangling symlink) has that name already.
    """
    assert location.name is not None
    try:
        fd = os.open(location.name, CREATE_FLAGS, 0o666, dir_fd=location.dir_fd)
    except FileExistsError:
        raise
    except OSError as exc:
        raise ToolExecutionError(
            f"{shown!r} could not be created: {exc.strerror}", hint=RETRY_HINT
        ) from exc
    try:
        with os_errors(shown):
            _write_all(fd, data)
    except BaseException:
        os.close(fd)
        fd = -1
        with suppress(OSError):
            os.unlink(location.name, dir_fd=location.dir_fd)
        raise
    finally:
        if fd >= 0:
            os.close(fd)


def replace_file(location: Location, data: bytes, mode: int | None, shown: str) -> None:
    """Replace the leaf of ``location`` atomically: a new temp file in the same folder (``O_EXCL``),
    given ``mode``, then renamed over the leaf (``os.replace`` with both ``dir_fd``)."""
    assert location.name is not None
    parent = location.dir_fd
    with os_errors(shown):
        for _ in range(100):
            temp = f"{TEMP_PREFIX}{secrets.token_hex(6)}"
            try:
                fd = os.open(temp, CREATE_FLAGS, 0o600, dir_fd=parent)
                break
            except FileExistsError:
                continue
        else:  # pragma: no cover - 100 collisions of 48 random bits
            raise ToolExecutionError(f"{shown!r}: no free temporary name", hint=RETRY_HINT)
        try:
            try:
                _write_all(fd, data)
                if mode is not None:
                    os.fchmod(fd, mode)
            finally:
                os.close(fd)
            os.replace(temp, location.name, src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            with suppress(OSError):
                os.unlink(temp, dir_fd=parent)
            raise
