"""One frozen Settings object: defaults, then config.toml, then EDGEAGENT_* environment variables."""

from __future__ import annotations

import dataclasses
import math
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
MAX_CONFIG_BYTES = 256 * 1024


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
    adapter: Path | None = None  # a GGUF LoRA adapter for the model (edgeagent adapt)
    adapter_scale: float = 1.0
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
    tool_retrieval: bool = True
    path_choices: bool = True
    span_arguments: bool = True
    number_choices: bool = True  # a required number is one the request states (agent.spans)
    cite_sources: bool = True  # quote the lines of read results an answer rests on
    follow_up_calls: bool = True  # after a result, another call when the request asks for it
    exemplars: bool = True  # worked examples in the system prompt (the cached prefix)
    tool_rendering: str = "signatures"  # how the system prompt shows tools: signatures | json
    call_repeat_penalty: float = 1.1
    remote_url: str | None = None
    remote_api_key: str | None = field(default=None, repr=False)
    remote_model: str | None = None
    remote_timeout_s: float = 30.0
    remote_retries: int = 2
    allowed_roots: tuple[Path, ...] = ()
    allow_hardlinks: bool = False
    tool_timeout_s: float = 20.0
    tool_output_cap: int = 16_000
    max_steps: int = 6
    watts_per_core: float = 7.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", Path(self.home).expanduser())
        if self.models_dir is None:
            object.__setattr__(self, "models_dir", self.home / "models")
        if self.adapter is not None:
            object.__setattr__(self, "adapter", Path(self.adapter).expanduser())
        if self.db_path is None:
            object.__setattr__(self, "db_path", self.home / "edgeagent.db")
        if not self.allowed_roots:
            object.__setattr__(self, "allowed_roots", (Path.cwd(),))
        roots = tuple(Path(r).expanduser().resolve() for r in self.allowed_roots)
        object.__setattr__(self, "allowed_roots", roots)
        problems = [p for name in _FIELD_RULES if (p := check_field(name, getattr(self, name)))]
        if self.tool_rendering not in TOOL_RENDERINGS:
            problems.append(
                f"tool_rendering = {self.tool_rendering!r}: must be one of "
                + ", ".join(TOOL_RENDERINGS)
            )
        problems += [
            f"allowed_roots: {root} is not an existing folder"
            for root in roots
            if not root.is_dir()
        ]
        if problems:
            raise settings_error(problems)

    @property
    def config_path(self) -> Path:
        return self.home / "config.toml"

    @property
    def network_allowed(self) -> bool:
        """Whether anything may use the network (``allow_network`` and not ``offline``)."""
        return bool(self.allow_network) and not self.offline

    def replace(self, **changes) -> Settings:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


TOOL_RENDERINGS = ("signatures", "json")
_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


@dataclass(frozen=True)
class _Rule:
    """The range a numeric setting must lie in, and how to say so."""

    kind: type
    low: float
    high: float
    low_open: bool = False
    optional: bool = False

    def describe(self) -> str:
        what = "an integer" if self.kind is int else "a number"
        low, high = (f"{int(v)}" if self.kind is int else f"{v:g}" for v in (self.low, self.high))
        return f"{what} {'above' if self.low_open else 'from'} {low} to {high}"


# One table of ranges, checked for every Settings however it was made (file, env, code).
_FIELD_RULES: dict[str, _Rule] = {
    "n_ctx": _Rule(int, 128, 1 << 20),
    "adapter_scale": _Rule(float, 0, 4),
    "n_threads": _Rule(int, 1, 1024, optional=True),
    "n_gpu_layers": _Rule(int, -1, 100_000),
    "max_tokens": _Rule(int, 1, 1 << 20),
    "string_cap": _Rule(int, 1, 2000),
    "answer_cap": _Rule(int, 1, 1 << 20),
    "decode_timeout_s": _Rule(float, 0.01, 86_400),
    "temperature": _Rule(float, 0, 5),
    "confidence_threshold": _Rule(float, 0, 1),
    "call_bias": _Rule(float, -50, 50),
    "call_repeat_penalty": _Rule(float, 1, 5),
    "remote_timeout_s": _Rule(float, 0.01, 3600),
    "remote_retries": _Rule(int, 0, 10),
    "tool_timeout_s": _Rule(float, 0.01, 3600),
    "tool_output_cap": _Rule(int, 1, 1 << 20),
    "max_steps": _Rule(int, 1, 100),
    "watts_per_core": _Rule(float, 0, 1000, low_open=True),
}


def check_field(name: str, value) -> str | None:
    """One line saying why ``value`` is not allowed for setting ``name``, or None if it is."""
    rule = _FIELD_RULES.get(name)
    if rule is None or (value is None and rule.optional):
        return None
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not numeric or (rule.kind is int and not isinstance(value, int)):
        return f"{name} = {value!r}: must be {rule.describe()}"
    if not math.isfinite(value):
        return f"{name} = {value!r}: must be {rule.describe()} (not inf or nan)"
    too_low = value <= rule.low if rule.low_open else value < rule.low
    if too_low or value > rule.high:
        return f"{name} = {value!r}: must be {rule.describe()}"
    return None


def settings_error(problems: list[str], source: str | None = None) -> ConfigError:
    """One ConfigError listing every bad setting, one line each."""
    where = f"{source}: " if source else ""
    if len(problems) == 1:
        return ConfigError(f"{where}{problems[0]}", "fix or remove that setting")
    lines = "\n  ".join(problems)
    return ConfigError(
        f"{where}{len(problems)} settings are out of range:\n  {lines}", "fix or remove them"
    )


def _as_int(raw) -> int:
    """An integer from TOML or text; an integral float (4096.0) is accepted, inf and nan are not."""
    if isinstance(raw, bool):
        raise ValueError(raw)
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        if not math.isfinite(raw) or raw != int(raw):
            raise ValueError(raw)
        return int(raw)
    text = str(raw).strip().replace("_", "")
    try:
        return int(text)
    except ValueError:
        return _as_int(float(text))


def _coerce(name: str, raw, source: str):
    """Turn a TOML or environment value into the field's type, or raise ConfigError."""
    kind = str(_FIELDS[name].type)
    try:
        if "tuple" in kind:
            items = raw.split(os.pathsep) if isinstance(raw, str) else list(raw)
            return tuple(Path(i) for i in items if str(i))
        if "Path" in kind:
            if not isinstance(raw, str) or not raw or "\x00" in raw:
                raise ValueError(raw)
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
            if kind.endswith("None") and str(raw).strip().lower() in {"", "none", "auto"}:
                return None
            return _as_int(raw)
        if kind.startswith("float"):
            if isinstance(raw, bool):
                raise ValueError(raw)
            return float(raw)
        if not isinstance(raw, (str, int, float)) or isinstance(raw, bool):
            raise ValueError(raw)
        return str(raw)
    except (TypeError, ValueError, OverflowError) as exc:
        what = _KIND_WORDS.get(kind.split(" ")[0], kind)
        raise ConfigError(
            f"{source}: cannot read {name} = {_show(raw)} as {what}", "fix or remove that setting"
        ) from exc


_KIND_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "text"}


def _show(raw) -> str:
    text = repr(raw)
    return text if len(text) <= 80 else text[:77] + "..."


def load_settings(**overrides) -> Settings:
    """Settings from defaults, ``$EDGEAGENT_HOME/config.toml``, env vars, then ``overrides``.

    Every bad value is reported at once, one line each, naming where it came from.
    """
    home = Path(overrides.get("home") or default_home()).expanduser()
    values: dict = {"home": home}
    sources: dict[str, str] = {}
    config_file = home / "config.toml"
    if config_file.is_file():
        try:
            if config_file.stat().st_size > MAX_CONFIG_BYTES:
                raise ConfigError(
                    f"{config_file} is larger than {MAX_CONFIG_BYTES // 1024} KB",
                    "a config file holds a few settings; fix or delete it",
                )
            data = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise ConfigError(
                f"{config_file} is not valid TOML: {exc}", "fix or delete it"
            ) from exc
        except OSError as exc:
            raise ConfigError(f"cannot read {config_file}: {exc.strerror}", "check it") from exc
        for key, raw in data.items():
            if key not in _FIELDS or key == "home":
                raise ConfigError(f"{config_file}: unknown setting {key!r}", "remove it")
            values[key] = _coerce(key, raw, str(config_file))
            sources[key] = str(config_file)
    for name in _FIELDS:
        env = os.environ.get(f"EDGEAGENT_{name.upper()}")
        if env is not None and name != "home":
            values[name] = _coerce(name, env, f"EDGEAGENT_{name.upper()}")
            sources[name] = f"EDGEAGENT_{name.upper()}"
    values.update({k: v for k, v in overrides.items() if v is not None})
    problems = []
    for name, value in values.items():
        problem = check_field(name, value)
        if problem:
            source = sources.get(name) if name not in overrides else "option"
            problems.append(f"{problem} (from {source})" if source else problem)
    if problems:
        raise settings_error(problems)
    return Settings(**values)


def parse_setting(name: str, text: str):
    """A setting's value from what a user typed, checked like a config file's (ConfigError
    saying what is wrong otherwise)."""
    if name not in _FIELDS or name == "home":
        raise ConfigError(f"unknown setting {name!r}", "see the settings in the README")
    value = _coerce(name, text, "this field")
    if (kind := str(_FIELDS[name].type)).endswith("None") and "str" in kind and not text.strip():
        value = None
    problem = check_field(name, value)
    if problem:
        raise ConfigError(problem, "fix the value")
    return value


def set_config_value(home: Path, key: str, value: str | float | bool | list | None) -> Path:
    """Set (or with None remove) one top-level setting in ``home/config.toml``, keeping every
    other line as it is; the result is read back and checked before it replaces the file. A
    file holding the remote API key is made readable by its owner only."""
    import json
    import re

    if key not in _FIELDS or key == "home":
        raise ConfigError(f"unknown setting {key!r}", "see the settings in the README")
    path = Path(home).expanduser() / "config.toml"
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
    kept = [line for line in lines if not pattern.match(line)]
    first_table = next((i for i, line in enumerate(kept) if line.lstrip().startswith("[")), None)
    if value is not None:
        entry = f"{key} = {json.dumps(value)}"
        kept.insert(len(kept) if first_table is None else first_table, entry)
    text = "\n".join(kept) + ("\n" if kept else "")
    tomllib.loads(text)  # never write a file load_settings would refuse
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("config.toml.part")
    tmp.write_text(text, encoding="utf-8")
    if "remote_api_key" in tomllib.loads(text):
        os.chmod(tmp, 0o600)
    tmp.replace(path)
    return path
