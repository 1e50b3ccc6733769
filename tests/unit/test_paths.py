"""Existing paths offered as grammar choices, unless the request names one that is not there."""

from __future__ import annotations

from edgeagent.agent.paths import existing_paths, named_paths, with_path_choices
from edgeagent.config import load_settings
from edgeagent.tools.builtin import make_builtin_tools
from edgeagent.tools.context import ToolContext
from tests.helpers import make_tree


def _tools(root):
    return {
        t.name: t for t in make_builtin_tools(ToolContext(load_settings(allowed_roots=(root,))))
    }


def test_read_tools_choose_among_existing_files(tmp_path):
    root = make_tree(tmp_path / "r", {"notes.txt": "a", "sub/deep.md": "b", ".hidden": "c"})
    tools = _tools(root)
    read = with_path_choices(tools["read_file"], root, "read my notes")
    assert read["properties"]["path"]["enum"] == ["notes.txt", "sub/deep.md"]
    named = with_path_choices(tools["read_file"], root, "what does deep.md say?")
    assert named["properties"]["path"]["enum"] == ["sub/deep.md"]  # the user named it
    listing = with_path_choices(tools["list_dir"], root, "what is in sub?")
    assert listing["properties"]["path"]["enum"] == [".", "sub"]
    assert (
        with_path_choices(tools["write_file"], root, "write x.txt")
        == tools["write_file"].parameters
    )  # a new file cannot be chosen from the existing ones


def test_a_named_missing_or_outside_path_keeps_free_text(tmp_path):
    root = make_tree(tmp_path / "r", {"notes.txt": "a"})
    tools = _tools(root)
    for request in ("cat ../../etc/passwd", "read missing.txt", "open ~/.ssh/id_rsa"):
        schema = with_path_choices(tools["read_file"], root, request)
        assert "enum" not in schema["properties"]["path"], request


def test_large_trees_keep_free_text(tmp_path):
    root = make_tree(tmp_path / "r", {f"f{i}.txt": "x" for i in range(300)})
    assert existing_paths(root, "file") is None
    assert named_paths("version 3.5 of budget.csv") == ["budget.csv"]
