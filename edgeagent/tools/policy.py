"""Policy: allowed roots (path safety validators), risk tiers, confirmation and the network switch.

Path safety is enforced twice: semantic validators (``path_validator``, ``must_exist``) refuse a
bad path before anything runs (status "invalid", so the model can repair it), and the built-in
file tools check every path again inside the tool: ``resolve_inside_roots`` picks the root and
gives the friendly errors, then ``edgeagent.tools.safe_fs`` walks the path from that root's
directory descriptor with ``O_NOFOLLOW``, so a tool called without validation, or a symlink
swapped in between the check and the use, still cannot escape. Checks by name alone (these
validators) are racy by nature; only the descriptor walk is a guarantee.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from edgeagent.config import Settings
from edgeagent.errors import ConfigError, PolicyError, ToolValidationError

NETWORK_OFF = "the network is off; run with --online"
CONFIRM_RISKS = frozenset({"write", "network"})
MAX_PATH_CHARS = 4096

PathValidator = Callable[[dict, Any], None]


def _show_roots(roots: Iterable[Path]) -> str:
    return ", ".join(str(r) for r in roots) or "none"


def resolve_inside_roots(path: str | os.PathLike[str], roots: Iterable[str | Path]) -> Path:
    """Resolve ``path`` (symlinks followed) and return it if it lies inside one of ``roots``.

    A relative path is relative to the first root; ``~`` is expanded (and then refused unless
    the home directory is inside a root). Anything that resolves outside every root
    (``../../etc/passwd``, ``/etc/passwd``, a symlink pointing out) raises ToolValidationError
    naming the path and the roots.
    """
    resolved_roots = [Path(r).expanduser().resolve() for r in roots]
    if not resolved_roots:
        raise ToolValidationError(
            f"no allowed roots are configured, so path {str(path)!r} cannot be used",
            hint="set allowed_roots (EDGEAGENT_ALLOWED_ROOTS) to the folders tools may use",
        )
    text = os.fspath(path)
    shown = text if len(text) <= 200 else text[:200] + "..."
    hint = (
        f"use a path inside the allowed roots ({_show_roots(resolved_roots)}), e.g. a relative path"
    )
    if "\x00" in text or len(text) > MAX_PATH_CHARS:
        raise ToolValidationError(f"path {shown!r} is not a valid path", hint=hint)
    try:
        candidate = Path(text).expanduser()
        if not candidate.is_absolute():
            candidate = resolved_roots[0] / candidate
        resolved = candidate.resolve(strict=False)
    except (OSError, RuntimeError, ValueError) as exc:  # symlink loop, unknown ~user, ...
        raise ToolValidationError(f"path {shown!r} cannot be resolved: {exc}", hint=hint) from exc
    for root in resolved_roots:
        if resolved == root or resolved.is_relative_to(root):
            return resolved
    raise ToolValidationError(
        f"path {shown!r} resolves to {resolved}, which is outside the allowed roots "
        f"({_show_roots(resolved_roots)})",
        hint=hint,
    )


def context_roots(context: Any) -> tuple[Path, ...]:
    """The allowed roots of a ToolContext (or anything with ``allowed_roots``)."""
    roots = getattr(context, "allowed_roots", None)
    if not roots:
        raise ToolValidationError(
            "no tool context with allowed roots was given, so paths cannot be checked",
            hint="run the tool through an Executor with a ToolContext",
        )
    return tuple(roots)


def path_validator(*arg_names: str) -> PathValidator:
    """A semantic validator refusing any of ``arg_names`` that resolves outside the roots.

    Arguments that are missing or None are skipped (optional paths).
    """

    def validate_paths(arguments: dict, context: Any) -> None:
        for name in arg_names:
            value = arguments.get(name)
            if value is None:
                continue
            try:
                resolve_inside_roots(value, context_roots(context))
            except ToolValidationError as exc:
                raise ToolValidationError(
                    f"argument {name!r}: {exc.message}", hint=exc.hint
                ) from None

    validate_paths.__name__ = f"path_validator({', '.join(arg_names)})"
    return validate_paths


def must_exist(arg: str, kind: Literal["file", "dir"] | None = None) -> PathValidator:
    """A semantic validator: argument ``arg`` names an existing path (of ``kind`` if given)."""

    def validate_exists(arguments: dict, context: Any) -> None:
        value = arguments.get(arg)
        if value is None:
            return
        path = resolve_inside_roots(value, context_roots(context))
        try:
            path.lstat()
            exists = path.exists()
        except FileNotFoundError:
            exists = False
        except OSError as exc:  # a name too long, a permission problem on the way
            raise ToolValidationError(
                f"argument {arg!r}: {value!r} cannot be used: {exc.strerror}",
                hint="check the name; list_dir shows what is in a folder",
            ) from None
        if not exists:
            raise ToolValidationError(
                f"argument {arg!r}: {value!r} does not exist (looked for {path})",
                hint="check the name; list_dir shows what is in a folder",
            )
        if kind == "file" and not path.is_file():
            raise ToolValidationError(
                f"argument {arg!r}: {value!r} is not a file", hint="pass the path of a file"
            )
        if kind == "dir" and not path.is_dir():
            raise ToolValidationError(
                f"argument {arg!r}: {value!r} is not a folder", hint="pass the path of a folder"
            )

    validate_exists.__name__ = f"must_exist({arg})"
    validate_exists.existing_path = (arg, kind)  # lets the grammar offer only existing paths
    return validate_exists


@dataclass(frozen=True)
class Policy:
    """What the executor allows: pre-approval (``--yes``), the network, time and output bounds.

    Risk tiers: "read" runs without asking; "write" and "network" need confirmation unless
    ``auto_approve``; "network" is refused outright when ``allow_network`` is False.
    """

    auto_approve: bool = False
    allow_network: bool = False
    timeout_s: float = 20.0
    output_cap: int = 16_000

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ConfigError(
                f"tool timeout must be positive, got {self.timeout_s!r}",
                hint="set EDGEAGENT_TOOL_TIMEOUT_S to a number of seconds",
            )
        if self.output_cap < 1:
            raise ConfigError(
                f"tool output cap must be at least 1, got {self.output_cap!r}",
                hint="set EDGEAGENT_TOOL_OUTPUT_CAP to a number of characters",
            )

    @classmethod
    def from_settings(
        cls, settings: Settings, *, auto_approve: bool = False, allow_network: bool | None = None
    ) -> Policy:
        """A policy from settings; ``allow_network`` overrides the settings (``--online``)."""
        if allow_network is None:
            allow_network = settings.network_allowed
        return cls(
            auto_approve=auto_approve,
            allow_network=allow_network,
            timeout_s=settings.tool_timeout_s,
            output_cap=settings.tool_output_cap,
        )

    def needs_confirmation(self, tool: Any) -> bool:
        """True for write and network tools unless pre-approved."""
        return getattr(tool, "risk", "read") in CONFIRM_RISKS and not self.auto_approve

    def check(self, tool: Any) -> None:
        """Raise PolicyError if the tool may not run at all (a network tool while offline)."""
        if getattr(tool, "risk", "read") == "network" and not self.allow_network:
            raise PolicyError(NETWORK_OFF)
