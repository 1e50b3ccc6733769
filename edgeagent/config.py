"""One frozen Settings object: defaults, then config.toml, then EDGEAGENT_* environment variables."""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from edgeagent.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_MODEL_ID = "smollm2-135m-instruct-q4_1"


def default_home() -> Path:
    """EDGEAGENT_HOME, else ~/.local/share/edgeagent (XDG_DATA_HOME respected)."""
    if env := os.environ.get("EDGEAGENT_HOME"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "edgeagent"


@dataclass(frozen=True)
class Settings:
    """Everything configurable; paths live under ``home`` unless overridden."""

    home: Path = field(default_factory=default_home)
    models_dir: Path | None = None
    db_path: Path | None = None
    model: str = DEFAULT_MODEL_ID
    n_ctx: int = 4096
    n_threads: int | None = None
    n_gpu_layers: int = -1
    max_tokens: int = 256
    string_cap: int = 200
    answer_cap: int = 1200
    decode_timeout_s: float = 60.0
    temperature: float = 0.0
    allow_network: bool = False
    offline: bool = False
    confidence_threshold: float = 0.5
    call_bias: float = 8.0
    call_repeat_penalty: float = 1.1
    remote_url: str | None = None
    remote_api_key: str | None = field(default=None, repr=False)
    remote_model: str | None = None
    remote_timeout_s: float = 30.0
    remote_retries: int = 2
    allowed_roots: tuple[Path, ...] = ()
    tool_timeout_s: float = 20.0
    tool_output_cap: int = 16_000
    max_steps: int = 6
    watts_per_core: float = 7.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", Path(self.home).expanduser())
        if self.models_dir is None:
            object.__setattr__(self, "models_dir", self.home / "models")
        if self.db_path is None:
            object.__setattr__(self, "db_path", self.home / "edgeagent.db")
        if not self.allowed_roots:
            object.__setattr__(self, "allowed_roots", (Path.cwd(),))
        roots = tuple(Path(r).expanduser().resolve() for r in self.allowed_roots)
        object.__setattr__(self, "allowed_roots", roots)
        if not 0.0 <= self.confidence_threshold <= 1.0:
            raise ConfigError(
                f"confidence_threshold must be in [0, 1], got {self.confidence_threshold}",
                "set EDGEAGENT_CONFIDENCE_THRESHOLD to a number such as 0.5",
            )

    @property
    def config_path(self) -> Path:
        return self.home / "config.toml"

    def replace(self, **changes) -> Settings:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _coerce(name: str, raw, source: str):
    """Turn a TOML or environment value into the field's type, or raise ConfigError."""
    kind = str(_FIELDS[name].type)
    try:
        if "tuple" in kind:
            items = raw.split(os.pathsep) if isinstance(raw, str) else list(raw)
            return tuple(Path(i) for i in items if str(i))
        if "Path" in kind:
            return Path(raw)
        if kind.startswith("bool"):
            if isinstance(raw, bool):
                return raw
            lowered = str(raw).strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(raw)
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{source}: cannot read {name}={raw!r} as {kind}", "fix or remove that setting"
        ) from exc


def load_settings(**overrides) -> Settings:
    """Settings from defaults, ``$EDGEAGENT_HOME/config.toml``, env vars, then ``overrides``."""
    home = Path(overrides.get("home") or default_home()).expanduser()
    values: dict = {"home": home}
    config_file = home / "config.toml"
    if config_file.is_file():
        try:
            data = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"{config_file} is not valid TOML: {exc}", "fix or delete it"
            ) from exc
        for key, raw in data.items():
            if key not in _FIELDS or key == "home":
                raise ConfigError(f"{config_file}: unknown setting {key!r}", "remove it")
            values[key] = _coerce(key, raw, str(config_file))
    for name in _FIELDS:
        env = os.environ.get(f"EDGEAGENT_{name.upper()}")
        if env is not None and name != "home":
            values[name] = _coerce(name, env, f"EDGEAGENT_{name.upper()}")
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)
