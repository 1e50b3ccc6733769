"""BFCL's own AST checker (``bfcl_eval``), imported without its API-handler dependencies.

``ast_checker`` imports ``bfcl_eval.constants.model_config``, which imports every API
handler (cloud SDKs, torch). Only ``MODEL_CONFIG_MAPPING[name].underscore_to_dot`` is read,
so a stand-in module is put in ``sys.modules`` for the import and the checker's mapping is
then pinned to the stand-in: our calls come back with BFCL's dotted names restored, so
``underscore_to_dot`` is False for every model.
"""

from __future__ import annotations

import importlib
import sys
import threading
import types
from importlib import metadata

from edgeagent.errors import ConfigError

MODEL_NAME = "edgeagent"
INSTALL_HINT = "install the BFCL data and checker: pip install --no-deps bfcl-eval"
_MODEL_CONFIG = "bfcl_eval.constants.model_config"


class _Config:
    """What the checker reads from a model's config."""

    underscore_to_dot = False


class _AnyModel(dict):
    """MODEL_CONFIG_MAPPING stand-in: every model name maps to a config without dot rewriting."""

    def __missing__(self, key: str) -> _Config:
        return _Config()


_checker_module = None
_lock = threading.Lock()


def bfcl_version() -> str | None:
    """The installed bfcl-eval version, or None when it is not installed."""
    try:
        return metadata.version("bfcl-eval")
    except metadata.PackageNotFoundError:
        return None


def checker_module():
    """``bfcl_eval.eval_checker.ast_eval.ast_checker``, imported once with the stand-in config."""
    with _lock:
        return _import_checker()


def _import_checker():
    global _checker_module
    if _checker_module is not None:
        return _checker_module
    if bfcl_version() is None:
        raise ConfigError("bfcl-eval is not installed", INSTALL_HINT)
    inserted = _MODEL_CONFIG not in sys.modules
    if inserted:
        stand_in = types.ModuleType(_MODEL_CONFIG)
        stand_in.MODEL_CONFIG_MAPPING = _AnyModel()
        sys.modules[_MODEL_CONFIG] = stand_in
    try:
        module = importlib.import_module("bfcl_eval.eval_checker.ast_eval.ast_checker")
    except ImportError as exc:
        raise ConfigError(f"cannot import the BFCL checker: {exc}", INSTALL_HINT) from exc
    finally:
        if inserted:
            sys.modules.pop(_MODEL_CONFIG, None)
    module.MODEL_CONFIG_MAPPING = _AnyModel()
    _checker_module = module
    return module


def check_ast(functions: list[dict], calls: list[dict], answer: list, category: str) -> dict:
    """BFCL's verdict ``{"valid", "error", "error_type"}`` for calls ``[{name: {arg: value}}]``.

    ``functions`` are the item's BFCL function docs (dotted names, BFCL types), ``answer``
    its possible answer, ``category`` e.g. ``simple_python`` or ``multiple``.
    """
    module = checker_module()
    from bfcl_eval.constants.enums import Language

    return module.ast_checker(functions, calls, answer, Language.PYTHON, category, MODEL_NAME)


def check_irrelevance(calls: list[dict]) -> dict:
    """Irrelevance items pass when the model makes no call (BFCL's ``is_empty_output`` rule)."""
    made_call = any(isinstance(c, dict) and len(c) for c in calls)
    if made_call:
        return {
            "valid": False,
            "error": ["Valid syntax. Successfully decode AST when it should not."],
            "error_type": "irrelevance_error:decoder_success",
        }
    return {"valid": True, "error": [], "error_type": None}
