"""`edgeagent doctor`: checks the install, the hardware, energy sources and storage; a fix for each problem."""

from __future__ import annotations

import os
import platform
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from edgeagent.__about__ import __version__
from edgeagent.config import Settings
from edgeagent.errors import EdgeAgentError
from edgeagent.metrics.energy import energy_sources_status

MIN_PYTHON = (3, 10)
MIN_LLAMA_CPP = (0, 3, 16)
LOW_RAM_BYTES = 1 << 30
GPU_BACKENDS = {
    "metal": "Metal",
    "cuda": "CUDA",
    "cublas": "CUDA",
    "hip": "HIP",
    "rocm": "HIP",
    "vulkan": "Vulkan",
    "sycl": "SYCL",
    "opencl": "OpenCL",
    "musa": "MUSA",
    "cann": "CANN",
    "kompute": "Kompute",
}
REINSTALL = "pip install --force-reinstall --no-cache-dir llama-cpp-python"
LLAMA_INSTALL_FIX = (
    "pip install llama-cpp-python (it compiles llama.cpp: needs a C/C++ compiler and cmake); "
    'portable CPU build: CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install --no-cache-dir llama-cpp-python; '
    "Metal, CUDA and Termux flags are in packaging/README.md"
)
STATUSES = ("ok", "warn", "fail")


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report: what was checked, how it went, and what to do about it."""

    name: str
    status: str
    detail: str
    fix: str | None = None

    def to_dict(self) -> dict:
        """Plain dict for ``--json``."""
        return asdict(self)


def _gib(n: float) -> str:
    return f"{n / (1 << 30):.1f} GiB"


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


# ---- Python and llama.cpp ----------------------------------------------------------------------


def check_python() -> Check:
    """Python version and implementation."""
    v = sys.version_info
    detail = f"Python {v.major}.{v.minor}.{v.micro} ({platform.python_implementation()}) on {platform.system()} {platform.machine()}"
    if (v.major, v.minor) < MIN_PYTHON:
        return Check(
            "python",
            "fail",
            f"{detail}; edgeagent needs Python >= 3.10",
            "install Python 3.10 or newer, then: pipx install --python python3.12 edgeagent",
        )
    return Check("python", "ok", detail)


def parse_system_info(text: str) -> dict[str, dict[str, str]]:
    """``llama_print_system_info()`` as {backend: {feature: value}}; legacy flat lists go under ""."""
    backends: dict[str, dict[str, str]] = {}
    current = ""
    for piece in text.split("|"):
        parts = re.split(r"\s:(?=\s|$)", " " + piece.strip() + " ")
        for name in parts[:-1]:
            current = name.strip()
            backends.setdefault(current, {})
        feature = parts[-1].strip()
        if "=" in feature:
            key, value = feature.split("=", 1)
            backends.setdefault(current, {})[key.strip()] = value.strip()
    return backends


def gpu_backends(info: dict[str, dict[str, str]]) -> list[str]:
    """GPU backends compiled in: registered backend names, or legacy ``METAL = 1`` style flags."""
    found: list[str] = []
    for name, features in info.items():
        label = GPU_BACKENDS.get(name.lower())
        if label and label not in found:
            found.append(label)
        if name == "":
            for key, value in features.items():
                label = GPU_BACKENDS.get(key.lower())
                if label and value.strip() == "1" and label not in found:
                    found.append(label)
    return found


def _cpu_flags() -> set[str]:
    """x86 CPU flags from /proc/cpuinfo (Linux), lowercase; empty elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def check_llama_backend(
    system_info: str,
    gpu_offload: bool,
    *,
    system: str | None = None,
    machine: str | None = None,
    has_nvidia: bool | None = None,
    cpu_flags: set[str] | None = None,
) -> Check:
    """Which backend this llama.cpp build uses, whether it offloads to a GPU, and what it misses."""
    system = system or platform.system()
    machine = machine or platform.machine()
    info = parse_system_info(system_info)
    gpus = gpu_backends(info)
    cpu = info.get("CPU") or info.get("", {})
    enabled = [k for k, v in cpu.items() if v.strip() == "1" and k.upper() == k]
    backend = " + ".join([*gpus, "CPU"]) if gpus else "CPU"
    detail = f"backend {backend}; GPU offload {'yes' if gpu_offload else 'no'}"
    if enabled:
        detail += f"; CPU build {' '.join(enabled)}"
    if system == "Darwin" and machine == "arm64" and "Metal" not in gpus:
        return Check(
            "llama.cpp backend",
            "warn",
            detail + "; this Apple Silicon Mac could use Metal",
            f'CMAKE_ARGS="-DGGML_METAL=on" {REINSTALL}',
        )
    if has_nvidia is None:
        has_nvidia = shutil.which("nvidia-smi") is not None
    if has_nvidia and "CUDA" not in gpus:
        return Check(
            "llama.cpp backend",
            "warn",
            detail + "; an NVIDIA GPU is present but this build has no CUDA",
            f'CMAKE_ARGS="-DGGML_CUDA=on" {REINSTALL} (needs the CUDA toolkit)',
        )
    if cpu_flags is None:
        cpu_flags = _cpu_flags() if machine in ("x86_64", "AMD64") else set()
    if "avx2" in cpu_flags and cpu and cpu.get("AVX2", "0") != "1":
        return Check(
            "llama.cpp backend",
            "warn",
            detail + "; the CPU has AVX2 but this build does not use it (slower)",
            f'CMAKE_ARGS="-DGGML_NATIVE=ON" {REINSTALL}',
        )
    return Check("llama.cpp backend", "ok", detail)


def check_llama_cpp() -> list[Check]:
    """llama-cpp-python imports, its version, and its build's backend."""
    try:
        import llama_cpp
    except Exception as exc:  # ImportError, or OSError/RuntimeError when libllama fails to load
        return [
            Check(
                "llama-cpp-python",
                "fail",
                f"cannot import llama_cpp: {type(exc).__name__}: {exc}",
                LLAMA_INSTALL_FIX,
            )
        ]
    version = getattr(llama_cpp, "__version__", "unknown")
    checks = []
    if _version_tuple(version) and _version_tuple(version) < MIN_LLAMA_CPP:
        checks.append(
            Check(
                "llama-cpp-python",
                "warn",
                f"version {version} is older than the tested 0.3.16",
                "pip install --upgrade llama-cpp-python",
            )
        )
    else:
        checks.append(Check("llama-cpp-python", "ok", f"version {version}, imports"))
    try:
        raw = llama_cpp.llama_print_system_info()
        info = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        offload = bool(llama_cpp.llama_supports_gpu_offload())
    except Exception as exc:
        checks.append(
            Check(
                "llama.cpp backend",
                "warn",
                f"cannot query the build: {type(exc).__name__}: {exc}",
                LLAMA_INSTALL_FIX,
            )
        )
        return checks
    checks.append(check_llama_backend(info, offload))
    return checks


def check_llguidance() -> Check:
    """llguidance (the fast grammar engine) imports."""
    try:
        import llguidance  # noqa: F401
    except Exception as exc:
        return Check(
            "llguidance",
            "fail",
            f"cannot import llguidance: {type(exc).__name__}: {exc}",
            "pip install llguidance",
        )
    from importlib.metadata import PackageNotFoundError, version

    try:
        detail = f"version {version('llguidance')}, imports"
    except PackageNotFoundError:
        detail = "imports"
    return Check("llguidance", "ok", detail)


# ---- hardware and energy -----------------------------------------------------------------------


def check_cpu(settings: Settings) -> Check:
    """Physical and logical cores, and the threads llama.cpp will use."""
    physical = psutil.cpu_count(logical=False)
    logical = psutil.cpu_count(logical=True)
    threads = settings.n_threads or physical or logical
    detail = (
        f"{physical or '?'} physical, {logical or '?'} logical cores; llama.cpp threads {threads}"
    )
    if not physical:
        return Check(
            "cpu",
            "warn",
            detail + "; physical core count unknown",
            "set n_threads in config.toml (or EDGEAGENT_N_THREADS) to your physical core count",
        )
    return Check("cpu", "ok", detail)


def check_memory() -> Check:
    """Total and available RAM."""
    mem = psutil.virtual_memory()
    detail = f"{_gib(mem.total)} total, {_gib(mem.available)} available"
    if mem.available < LOW_RAM_BYTES:
        return Check(
            "memory",
            "warn",
            detail + "; under 1 GiB free",
            "close other programs, or pick a smaller model: edgeagent models recommend",
        )
    return Check("memory", "ok", detail)


def check_energy(settings: Settings, **source_options) -> Check:
    """Which energy source is readable; the fix for the ones that are not."""
    statuses = energy_sources_status(settings, **source_options)
    measured = [s for s in statuses if s.available and s.name != "estimate"]
    others = "; ".join(f"{s.name}: {s.detail}" for s in statuses if s.name != "estimate")
    if measured:
        return Check("energy", "ok", f"measured by {measured[0].name} ({measured[0].detail})")
    estimate = next(s for s in statuses if s.name == "estimate")
    detail = f"estimated: {estimate.detail}; {others}"
    fix = next((s.fix for s in statuses if not s.available and s.fix), None)
    if fix:
        return Check("energy", "warn", detail, fix)
    return Check("energy", "ok", detail + "; no hardware counter here, tune watts_per_core")


# ---- storage -----------------------------------------------------------------------------------


def _writable(directory: Path) -> bool:
    """True if a file can really be created in ``directory`` (not only per mode bits)."""
    try:
        with tempfile.TemporaryFile(dir=directory):
            return True
    except OSError:
        return False


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(path.anchor or ".")


def _folder_problem(path: Path, what: str, env: str) -> Check | None:
    """A fail Check if ``path`` cannot be used as (or created as) a writable folder."""
    if path.exists() and not path.is_dir():
        return Check(
            what,
            "fail",
            f"{path} exists but is not a folder",
            f"move that file away, or set {env} to a folder",
        )
    if path.is_dir():
        if not _writable(path):
            return Check(
                what,
                "fail",
                f"{path} is not writable",
                f"chmod u+w {path} (or fix its owner), or set {env} to a writable folder",
            )
        return None
    base = _nearest_existing(path)
    if not base.is_dir() or not _writable(base):
        return Check(
            what,
            "fail",
            f"{path} does not exist and cannot be created ({base} is not a writable folder)",
            f"create it by hand (mkdir -p {path}), or set {env} to a writable folder",
        )
    return None


def _catalog_entries(catalog) -> list:
    entries = getattr(catalog, "entries", catalog)
    if isinstance(entries, dict):
        return list(entries.values())
    return list(entries)


def check_models(settings: Settings) -> list[Check]:
    """The model folder, the installed catalog models and the default model."""
    folder = Path(settings.models_dir)
    problem = _folder_problem(folder, "model folder", "EDGEAGENT_MODELS_DIR")
    if problem:
        checks = [problem]
    elif folder.is_dir():
        checks = [Check("model folder", "ok", f"{folder} (writable)")]
    else:
        checks = [Check("model folder", "ok", f"{folder} (created on first pull)")]
    checks.append(check_installed_models(settings))
    return checks


def check_installed_models(settings: Settings) -> Check:
    """Which catalog models are on disk, and whether the default model is usable."""
    default = settings.model
    if (
        default.lower().endswith(".gguf")
        or "/" in default
        or os.sep in default
        or default[:1] in "~."
    ):
        path = Path(default).expanduser()
        if path.is_file():
            return Check("models", "ok", f"default model is a file: {path}")
        return Check(
            "models",
            "fail",
            f"default model file {path} does not exist",
            "fix `model` in config.toml (or EDGEAGENT_MODEL): a catalog id or an existing .gguf",
        )
    try:
        from edgeagent.runtime.catalog import is_installed, load_catalog
    except ImportError as exc:
        return Check(
            "models",
            "warn",
            f"the model catalog is unavailable: {exc}",
            "reinstall edgeagent: pipx reinstall edgeagent",
        )
    try:
        entries = _catalog_entries(load_catalog())
        installed = [e.id for e in entries if is_installed(e, settings)]
    except EdgeAgentError as exc:
        return Check("models", "fail", exc.message, exc.hint or "reinstall edgeagent")
    listed = ", ".join(installed) if installed else "none"
    detail = f"installed: {listed} ({len(installed)} of {len(entries)} catalog models); default {default}"
    entry = next((e for e in entries if e.id == default), None)
    ram_warning = _ram_warning(entry)
    if ram_warning:
        return Check("models", "warn", f"{detail}; {ram_warning}", "edgeagent models recommend")
    if default in installed:
        return Check("models", "ok", detail)
    if any(e.id == default for e in entries):
        return Check(
            "models",
            "warn",
            detail + " is not downloaded yet",
            f"edgeagent models pull {default} (edgeagent run also pulls it on first use when online)",
        )
    return Check(
        "models",
        "fail",
        detail + " is not in the catalog",
        "see edgeagent models list; set `model` in config.toml to one of those ids or a .gguf path",
    )


def _ram_warning(entry) -> str | None:
    """The catalog's RAM warning for ``entry`` (None if it fits or cannot be judged)."""
    if entry is None:
        return None
    try:
        from edgeagent.runtime.catalog import check_ram
    except ImportError:
        return None
    return check_ram(entry)


def check_database(settings: Settings) -> Check:
    """The history database passes the same checks ``run`` makes before it writes (read-only)."""
    from edgeagent.store.db import inspect_database

    path = Path(settings.db_path)
    problem = _folder_problem(path.parent, "database", "EDGEAGENT_DB_PATH")
    if problem:
        return problem
    try:
        found = inspect_database(path)
    except EdgeAgentError as exc:
        return Check("database", "fail", exc.message, exc.hint or "run `edgeagent doctor` again")
    if not found["exists"]:
        return Check("database", "ok", f"{path} (created on first run)")
    detail = f"{path} ({found['size_bytes']:,} bytes, quick_check ok"
    statuses = found["requests_by_status"]
    detail += f", {sum(statuses.values())} requests"
    if statuses.get("running"):
        detail += f", {statuses['running']} running or killed (marked interrupted at next start)"
    if found["migrations_pending"]:
        detail += f"; will upgrade: {', '.join(found['migrations_pending'])}"
    return Check("database", "ok", detail + ")")


# ---- network -----------------------------------------------------------------------------------


def redact_url(url: str) -> str:
    """``url`` without user:password and without its query (which may hold a key)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return "set (unparseable URL)"
    query = "?<redacted>" if parts.query else ""
    return f"{parts.scheme}://{netloc}{parts.path}{query}" if parts.scheme else "set (no scheme)"


def check_network(settings: Settings) -> Check:
    """Network policy and remote endpoint; never prints the API key."""
    allowed = settings.network_allowed
    url = settings.remote_url
    key = "set" if settings.remote_api_key else "not set"
    detail = (
        f"network {'allowed' if allowed else 'off (offline-first)'}; "
        f"remote endpoint {redact_url(url) if url else 'not set'}; API key {key}"
    )
    if allowed and not url:
        return Check(
            "network",
            "warn",
            detail + "; low-confidence requests have nowhere to go",
            "set remote_url in config.toml (or EDGEAGENT_REMOTE_URL) to an OpenAI-compatible endpoint, "
            "or leave the network off",
        )
    if url:
        parts = urlsplit(url)
        local = parts.hostname in ("localhost", "127.0.0.1", "::1")
        if parts.scheme not in ("http", "https"):
            return Check(
                "network",
                "fail",
                detail + "; the endpoint must be an http(s) URL",
                "set remote_url to e.g. https://api.example.com/v1",
            )
        if parts.scheme == "http" and not local and settings.remote_api_key:
            return Check(
                "network",
                "warn",
                detail + "; the API key would travel unencrypted over http",
                "use an https:// remote_url",
            )
    return Check("network", "ok", detail)


# ---- the report --------------------------------------------------------------------------------


def _guard(name: str, fn: Callable[[], Check | list[Check]]) -> list[Check]:
    """Run one check; an unexpected exception becomes a failed check, never a traceback."""
    try:
        result = fn()
    except Exception as exc:
        return [
            Check(
                name,
                "fail",
                f"the doctor could not check this: {type(exc).__name__}: {exc}",
                "please report this as a bug with the output of edgeagent doctor --json",
            )
        ]
    return result if isinstance(result, list) else [result]


def _scrub(checks: Iterable[Check], secrets: Iterable[str | None]) -> list[Check]:
    """Replace any secret that slipped into a detail or a fix by ***."""
    secrets = [s for s in secrets if s and len(s) >= 4]
    out = []
    for check in checks:
        detail, fix = check.detail, check.fix
        for secret in secrets:
            detail = detail.replace(secret, "***")
            fix = fix.replace(secret, "***") if fix else fix
        out.append(Check(check.name, check.status, detail, fix))
    return out


def check_roots(settings: Settings) -> Check:
    """The folders the file tools may touch; a warning when one is very wide (/, home)."""
    roots = [Path(r) for r in settings.allowed_roots]
    shown = ", ".join(str(r) for r in roots)
    wide = [r for r in roots if r == Path(r.anchor) or r == Path.home().resolve()]
    if wide:
        return Check(
            "allowed roots",
            "warn",
            f"{shown}: {', '.join(map(str, wide))} lets the tools read (and, with your "
            "confirmation, write) a very large part of this machine",
            "set allowed_roots (EDGEAGENT_ALLOWED_ROOTS) to the folders you work in",
        )
    return Check("allowed roots", "ok", shown)


def collect_report(settings: Settings) -> list[Check]:
    """Every check, in the order the report prints them."""
    checks: list[Check] = []
    checks += _guard("python", check_python)
    checks += _guard("llama-cpp-python", check_llama_cpp)
    checks += _guard("llguidance", check_llguidance)
    checks += _guard("cpu", lambda: check_cpu(settings))
    checks += _guard("memory", check_memory)
    checks += _guard("energy", lambda: check_energy(settings))
    checks += _guard("model folder", lambda: check_models(settings))
    checks += _guard("database", lambda: check_database(settings))
    checks += _guard("allowed roots", lambda: check_roots(settings))
    checks += _guard("network", lambda: check_network(settings))
    return _scrub(checks, [settings.remote_api_key])


def worst_status(checks: Iterable[Check]) -> str:
    """The most severe status among ``checks`` ("ok" when empty)."""
    return max((c.status for c in checks), key=STATUSES.index, default="ok")


def report_to_dict(checks: list[Check]) -> dict:
    """The report as JSON-ready data: overall status and every check."""
    return {
        "edgeagent": __version__,
        "status": worst_status(checks),
        "checks": [c.to_dict() for c in checks],
    }
