"""The one-way direction of the package: ui -> agent -> runtime/grammar/tools -> store/metrics ->
types. Every import in the source is read (function-level ones included; ``TYPE_CHECKING``
blocks are annotations, not imports), so a new upward import fails here, not in review."""

from __future__ import annotations

import ast
from pathlib import Path

import edgeagent

PACKAGE = Path(edgeagent.__file__).parent

# higher imports lower; the same level only where listed in SAME_LEVEL
LEVELS = {
    "ui": 5,
    "cli": 5,
    "cli_adapt": 5,
    "__main__": 5,
    "agent": 4,
    "eval": 4,
    "adapt": 4,
    "doctor": 4,
    "testing": 4,
    "runtime": 3,
    "grammar": 3,
    "tools": 3,
    "store": 2,
    "metrics": 2,
    "events": 1,
    "config": 1,
    "secrets": 1,
    "inputs": 1,
    "cli_output": 1,
    "__init__": 1,
    "types": 0,
    "errors": 0,
    "__about__": 0,
}
SAME_LEVEL = {
    ("cli", "cli_adapt"),
    ("cli_adapt", "cli"),  # looked up lazily when a command runs
    ("cli", "ui"),
    ("__main__", "cli"),
    ("eval", "agent"),
    ("adapt", "agent"),
    ("adapt", "eval"),
    ("runtime", "grammar"),  # the engines compile our grammars; grammar never imports runtime
}
# third-party packages that only some parts may touch
EXTERNAL = {
    "textual": {"ui"},
    "llama_cpp": {"runtime", "adapt", "doctor"},
    "llguidance": {"runtime", "doctor"},
    "torch": {"adapt"},
    "transformers": {"adapt"},
    "peft": {"adapt"},
}


def _part(module: str) -> str:
    """The top-level part of ``edgeagent`` a dotted module name belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[tuple[str, int]]:
    """(module, line) of every absolute import in a file, outside ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    hidden = {
        id(sub)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for sub in ast.walk(node)
    }
    found = []
    for node in ast.walk(tree):
        if id(node) in hidden:
            continue
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, node.lineno))
    return found


def _edges() -> list[tuple[str, str, str]]:
    """(importing part, imported module, where) for every import in the package."""
    edges = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        source = _part(".".join(rel.parts).removesuffix(".__init__"))
        for module, line in _imports(path):
            edges.append((source, module, f"{path.relative_to(PACKAGE.parent)}:{line}"))
    return edges


def test_every_part_has_a_level():
    parts = {
        _part(".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts))
        for p in PACKAGE.rglob("*.py")
    }
    assert parts - set(LEVELS) == set(), "give the new part a level in LEVELS"


def test_imports_run_one_way():
    upward = []
    for source, module, where in _edges():
        if module.split(".")[0] != "edgeagent" or module == "edgeagent":
            continue
        target = _part(module)
        if source == target:
            continue
        if LEVELS[target] < LEVELS[source] or (source, target) in SAME_LEVEL:
            continue
        upward.append(f"{where}: {source} imports {module}")
    assert upward == []


def test_third_party_engines_stay_in_their_layers():
    leaks = []
    for source, module, where in _edges():
        allowed = EXTERNAL.get(module.split(".")[0])
        if allowed is not None and source not in allowed:
            leaks.append(f"{where}: {source} imports {module}")
    assert leaks == []


def test_grammar_is_text_in_text_out():
    """grammar/ imports neither llama.cpp nor llguidance, nor the runtime that wraps them."""
    bad = [
        f"{where}: {module}"
        for source, module, where in _edges()
        if source == "grammar"
        and module.split(".")[0] in {"llama_cpp", "llguidance"} | {"edgeagent"}
        and (module.split(".")[0] != "edgeagent" or _part(module) in {"runtime", "agent", "tools"})
    ]
    assert bad == []


def test_the_checker_sees_an_upward_import(tmp_path):
    """The reader itself: an upward import in a function body and one under TYPE_CHECKING."""
    path = tmp_path / "mod.py"
    path.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from edgeagent.agent.loop import Agent\n"
        "def f():\n    from edgeagent.ui.app import make_app\n"
    )
    assert [m for m, _ in _imports(path)] == ["typing", "edgeagent.ui.app"]
