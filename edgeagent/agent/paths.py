"""Existing paths as grammar choices: a read tool's path argument can only name what is there.

A 135M model asked to "read notes.txt" writes ``/Users/user_name/Desktop/test-1.txt`` as often as
``notes.txt``; the validator refuses it and the repair rarely does better. When a tool declares
that an argument must name an existing path (``policy.must_exist``), the proposer gives that
argument an ``enum`` of the paths that exist under the first allowed root (relative, a few
levels deep, at most ``MAX_CHOICES``), so the model chooses among real names instead of
inventing one. Larger trees keep the free-text argument (and the validator).
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

from edgeagent.agent.retrieval import PATHLIKE
from edgeagent.tools.builtin.files import SKIP_DIRS

MAX_CHOICES = 200
MAX_DEPTH = 3


def named_paths(request: str) -> list[str]:
    """The path-like words of a request, normalised (no leading ./, no trailing /)."""
    out = []
    for raw in PATHLIKE.findall(request):
        path = raw.strip().rstrip("/.,;:!?")
        while path.startswith("./"):
            path = path[2:]
        if path and not path.replace(".", "").isdigit():  # "3.5" is a number, not a file
            out.append(path)
    return out


def existing_paths(root: Path, kind: str | None) -> list[str] | None:
    """Relative paths under ``root`` of ``kind`` ("file", "dir" or None for both), or None
    when there are more than ``MAX_CHOICES`` (the argument then stays free text)."""
    found: list[str] = ["."] if kind in (None, "dir") else []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel = Path(dirpath).relative_to(root)
        depth = 0 if str(rel) == "." else len(rel.parts)
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        if depth >= MAX_DEPTH:
            dirnames[:] = []
        names = []
        if kind in (None, "dir"):
            names += [f"{d}" for d in dirnames]
        if kind in (None, "file"):
            names += sorted(f for f in filenames if not f.startswith("."))
        for name in names:
            found.append((rel / name).as_posix() if depth else name)
            if len(found) > MAX_CHOICES:
                return None
    return found


def with_path_choices(tool, root: Path, request: str = "") -> dict:
    """``tool.parameters`` with an ``enum`` of existing paths on its must-exist arguments.

    When the request names a path that is not among them ("read /etc/shadow"), the argument
    stays free text: the model must not be steered to some other file, and the validator then
    refuses the missing or outside path honestly.
    """
    marked = [getattr(v, "existing_path", None) for v in tool.validators]
    marked = [m for m in marked if m]
    if not marked:
        return tool.parameters
    schema = copy.deepcopy(tool.parameters)
    for arg, kind in marked:
        prop = (schema.get("properties") or {}).get(arg)
        if not isinstance(prop, dict) or prop.get("type") != "string":
            continue
        choices = existing_paths(root, kind)
        if not choices:
            continue
        known = set(choices) | {Path(c).name for c in choices}
        named = named_paths(request)
        if any(p not in known for p in named):
            continue
        # the user named the path: that is the choice (a model offered all of them picks wrong)
        picked = [c for c in choices if c in named or Path(c).name in named]
        prop["enum"] = picked or choices
        for key in ("minLength", "maxLength", "pattern"):
            prop.pop(key, None)
    return schema


def named_kinds(request: str, root: Path) -> set[str]:
    """``NAMED_FILE``/``NAMED_DIR`` for the existing files and folders the request names.

    Only names among the paths under ``root`` count (by relative path or by file name; a folder
    also by its bare name), so a request naming ``/etc/hosts`` or ``../x`` adds nothing.
    """
    from edgeagent.agent.retrieval import NAMED_DIR, NAMED_FILE

    named = named_paths(request)
    # "the recipes folder": a folder by its bare name (not as a part of a named path)
    parts = {part for path in named for part in Path(path).parts}
    bare = set(re.findall(r"[\w-]{3,}", request)) - parts
    choices = existing_paths(root, None) or []
    kinds = set()
    for choice in choices:
        if choice == ".":
            continue
        is_dir = (root / choice).is_dir()
        if choice in named or Path(choice).name in named or (is_dir and choice in bare):
            kinds.add(NAMED_DIR if is_dir else NAMED_FILE)
    return kinds
