"""Policy: path safety inside the allowed roots, risk tiers, confirmation, the network switch."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeagent.config import load_settings
from edgeagent.errors import ConfigError, PolicyError, ToolValidationError
from edgeagent.tools.context import ToolContext
from edgeagent.tools.policy import (
    NETWORK_OFF,
    Policy,
    must_exist,
    path_validator,
    resolve_inside_roots,
)
from edgeagent.tools.registry import tool_from_function
from tests.helpers import make_tree


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "root", {"sub/a.txt": "hello"})


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "outside", {"secret.txt": "secret"})


@pytest.fixture
def context(root: Path) -> ToolContext:
    return ToolContext(load_settings(allowed_roots=(root,)))


# --- resolve_inside_roots -----------------------------------------------------------------------


def test_relative_paths_are_relative_to_the_first_root(root: Path) -> None:
    assert resolve_inside_roots("sub/a.txt", [root]) == root / "sub" / "a.txt"
    assert resolve_inside_roots(".", [root]) == root
    assert resolve_inside_roots("", [root]) == root
    assert resolve_inside_roots("sub/../sub/./a.txt", [root]) == root / "sub" / "a.txt"
    assert resolve_inside_roots("new/file.txt", [root]) == root / "new" / "file.txt"


def test_absolute_path_inside_a_root_is_accepted(root: Path, tmp_path: Path) -> None:
    second = tmp_path / "second"
    second.mkdir()
    assert resolve_inside_roots(str(root / "sub"), [root]) == root / "sub"
    assert resolve_inside_roots(str(second / "x"), [root, second]) == second.resolve() / "x"


@pytest.mark.parametrize(
    "bad", ["../../etc/passwd", "/etc/passwd", "~", "~/.bashrc", "..", "sub/../../outside"]
)
def test_paths_outside_every_root_are_refused(root: Path, bad: str) -> None:
    with pytest.raises(ToolValidationError) as info:
        resolve_inside_roots(bad, [root])
    assert repr(bad) in info.value.message
    assert str(root) in info.value.message  # names the roots
    assert info.value.hint and "allowed roots" in info.value.hint


def test_prefix_sibling_is_not_inside(tmp_path: Path, root: Path) -> None:
    sibling = tmp_path / "root-evil"
    sibling.mkdir()
    with pytest.raises(ToolValidationError):
        resolve_inside_roots(str(sibling), [root])


def test_symlink_pointing_out_is_refused(root: Path, outside: Path) -> None:
    (root / "link.txt").symlink_to(outside / "secret.txt")
    (root / "linkdir").symlink_to(outside, target_is_directory=True)
    for name in ("link.txt", "linkdir", "linkdir/secret.txt"):
        with pytest.raises(ToolValidationError, match="outside the allowed roots"):
            resolve_inside_roots(name, [root])


def test_symlink_inside_the_root_is_accepted(root: Path) -> None:
    (root / "alias.txt").symlink_to(root / "sub" / "a.txt")
    assert resolve_inside_roots("alias.txt", [root]) == root / "sub" / "a.txt"


def test_dangling_symlink_pointing_out_is_refused(root: Path, outside: Path) -> None:
    (root / "later.txt").symlink_to(outside / "not-yet.txt")
    with pytest.raises(ToolValidationError):
        resolve_inside_roots("later.txt", [root])


def test_symlink_loop_and_nul_byte_are_refused_cleanly(root: Path) -> None:
    (root / "loop").symlink_to(root / "loop")
    for bad in ("loop/x", "a\x00b"):
        with pytest.raises(ToolValidationError):
            resolve_inside_roots(bad, [root])


def test_no_roots_is_an_error() -> None:
    with pytest.raises(ToolValidationError, match="no allowed roots"):
        resolve_inside_roots("x", [])


# --- validators ---------------------------------------------------------------------------------


def test_path_validator_checks_each_named_argument(context: ToolContext) -> None:
    check = path_validator("src", "dst")
    check({"src": "sub/a.txt", "dst": "b.txt"}, context)
    check({"src": "sub/a.txt", "dst": None}, context)  # optional paths are skipped
    with pytest.raises(ToolValidationError, match="argument 'dst'.*outside the allowed roots"):
        check({"src": "a", "dst": "../../etc/passwd"}, context)
    with pytest.raises(ToolValidationError, match="no tool context"):
        check({"src": "a"}, None)


def test_must_exist(context: ToolContext) -> None:
    must_exist("path")({"path": "sub/a.txt"}, context)
    must_exist("path", kind="file")({"path": "sub/a.txt"}, context)
    must_exist("path", kind="dir")({"path": "sub"}, context)
    with pytest.raises(ToolValidationError, match="does not exist"):
        must_exist("path")({"path": "nope.txt"}, context)
    with pytest.raises(ToolValidationError, match="is not a file"):
        must_exist("path", kind="file")({"path": "sub"}, context)
    with pytest.raises(ToolValidationError, match="is not a folder"):
        must_exist("path", kind="dir")({"path": "sub/a.txt"}, context)
    with pytest.raises(ToolValidationError, match="outside"):
        must_exist("path")({"path": "/etc/passwd"}, context)


def test_validators_plug_into_tool_check_arguments(context: ToolContext) -> None:
    def show(path: str) -> str:
        return path

    made = tool_from_function(show, validators=(path_validator("path"), must_exist("path")))
    assert made.check_arguments({"path": "sub/a.txt"}, context) == {"path": "sub/a.txt"}
    with pytest.raises(ToolValidationError) as info:
        made.check_arguments({"path": "../../etc/passwd"}, context)
    assert info.value.tool == "show"


# --- Policy and ToolContext ---------------------------------------------------------------------


def _tool(risk: str):
    def f() -> str:
        return "x"

    return tool_from_function(f, name=f"t_{risk}", risk=risk)


def test_needs_confirmation_by_risk_tier() -> None:
    policy = Policy()
    assert not policy.needs_confirmation(_tool("read"))
    assert policy.needs_confirmation(_tool("write"))
    assert policy.needs_confirmation(_tool("network"))
    approved = Policy(auto_approve=True)
    assert not approved.needs_confirmation(_tool("write"))
    assert not approved.needs_confirmation(_tool("network"))


def test_network_tools_are_refused_while_offline() -> None:
    with pytest.raises(PolicyError) as info:
        Policy(allow_network=False, auto_approve=True).check(_tool("network"))
    assert str(info.value) == NETWORK_OFF == "the network is off; run with --online"
    Policy(allow_network=True).check(_tool("network"))
    Policy(allow_network=False).check(_tool("write"))


def test_policy_from_settings_and_bounds(root: Path) -> None:
    settings = load_settings(
        allowed_roots=(root,), tool_timeout_s=3.5, tool_output_cap=99, allow_network=True
    )
    policy = Policy.from_settings(settings, auto_approve=True)
    assert policy == Policy(auto_approve=True, allow_network=True, timeout_s=3.5, output_cap=99)
    assert not Policy.from_settings(settings.replace(offline=True)).allow_network
    assert not Policy.from_settings(settings, allow_network=False).allow_network
    with pytest.raises(ConfigError):
        Policy(timeout_s=0)
    with pytest.raises(ConfigError):
        Policy(output_cap=0)


def test_tool_context_defaults_from_settings(root: Path, tmp_path: Path) -> None:
    settings = load_settings(allowed_roots=(root,), allow_network=True)
    ctx = ToolContext(settings)
    assert ctx.allowed_roots == (root,) and ctx.root == root
    assert ctx.allow_network is True and ctx.store is None
    assert ToolContext(settings.replace(offline=True)).allow_network is False
    other = ToolContext.from_settings(settings, allowed_roots=(tmp_path,), allow_network=False)
    assert other.allowed_roots == (tmp_path.resolve(),) and other.allow_network is False
