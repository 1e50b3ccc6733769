"""Typed Python function -> pydantic arguments model -> compact JSON Schema.

``model_from_function`` reads a function's signature, type hints, defaults and docstring and
builds a pydantic model of its arguments (``extra="forbid"``). ``compact_schema`` turns pydantic's
JSON Schema into the compact form sent to models and compilers: no ``title`` noise, non-recursive
``$defs`` inlined, ``anyOf`` of bare types folded into a type list.
"""

from __future__ import annotations

import collections.abc
import datetime
import enum
import inspect
import re
import types
import typing
import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.fields import FieldInfo

from edgeagent.errors import ToolDefinitionError

MAX_DESCRIPTION = 1024
SUPPORTED_HINT = (
    "supported annotations: str, int, float, bool, list[...], tuple[...], dict[str, ...], "
    "Literal[...], Enum, X | None, pydantic models, date/datetime/time/UUID, "
    "Annotated[..., Field(...)]"
)
_SCALARS = (str, int, float, bool, datetime.date, datetime.datetime, datetime.time, uuid.UUID)
_BASE_MODEL_ATTRS = frozenset(dir(BaseModel))

# --- docstrings ---------------------------------------------------------------------------------

_GOOGLE_SECTIONS = re.compile(
    r"^(args|arguments|parameters|params|keyword args|keyword arguments|kwargs|other parameters)"
    r"\s*:\s*$",
    re.IGNORECASE,
)
_ANY_SECTION = re.compile(r"^[A-Z][A-Za-z ]{1,30}:\s*$")
_NUMPY_UNDERLINE = re.compile(r"^\s*-{3,}\s*$")
_GOOGLE_PARAM = re.compile(r"^\*{0,2}(\w+)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$")
_SPHINX_PARAM = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")


def clip(text: str, limit: int = MAX_DESCRIPTION) -> str:
    """Collapse whitespace and cut ``text`` to ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a docstring into (summary paragraph, {parameter: description}).

    Understands Google style (``Args:`` with ``name (type): text`` lines and indented
    continuations), NumPy style (``Parameters`` + dashes) and Sphinx (``:param name: text``).
    """
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    for line in lines:
        s = line.strip()
        if (
            not s
            or _ANY_SECTION.match(s)
            or s.startswith(":")
            or _GOOGLE_SECTIONS.match(s)
            or s.lower() in ("parameters", "returns", "raises")
        ):
            break
        summary.append(s)
    params: dict[str, str] = {}
    i = 0
    while i < len(lines):
        s = lines[i].strip()
        if _GOOGLE_SECTIONS.match(s):
            i = _parse_google(lines, i + 1, _indent(lines[i]), params)
            continue
        if (
            s.lower() in ("parameters", "other parameters")
            and i + 1 < len(lines)
            and _NUMPY_UNDERLINE.match(lines[i + 1])
        ):
            i = _parse_numpy(lines, i + 2, _indent(lines[i]), params)
            continue
        m = _SPHINX_PARAM.match(s)
        if m:
            text = [m.group(2)]
            i += 1
            while i < len(lines) and lines[i].strip() and not lines[i].strip().startswith(":"):
                text.append(lines[i].strip())
                i += 1
            params[m.group(1)] = clip(" ".join(text))
            continue
        i += 1
    return clip(" ".join(summary)), params


def _parse_google(lines: list[str], i: int, base: int, params: dict[str, str]) -> int:
    item_indent: int | None = None
    name: str | None = None
    text: list[str] = []

    def flush() -> None:
        if name:
            params[name] = clip(" ".join(text))

    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        ind = _indent(line)
        if ind <= base:
            break
        if item_indent is None:
            item_indent = ind
        if ind <= item_indent:
            m = _GOOGLE_PARAM.match(line.strip())
            flush()
            name, text = (m.group(1), [m.group(3)]) if m else (None, [])
        else:
            text.append(line.strip())
        i += 1
    flush()
    return i


def _parse_numpy(lines: list[str], i: int, base: int, params: dict[str, str]) -> int:
    name: str | None = None
    text: list[str] = []
    while i < len(lines):
        line = lines[i]
        if i + 1 < len(lines) and _NUMPY_UNDERLINE.match(lines[i + 1]) and line.strip():
            break  # the next section's heading
        if line.strip() and _indent(line) <= base:
            if name:
                params[name] = clip(" ".join(text))
            name, text = line.split(":", 1)[0].strip().lstrip("*"), []
        elif line.strip():
            text.append(line.strip())
        i += 1
    if name:
        params[name] = clip(" ".join(text))
    return i


# --- annotations --------------------------------------------------------------------------------


def _strip_annotated(tp: Any) -> tuple[Any, list[Any]]:
    if typing.get_origin(tp) is Annotated:
        base, *meta = typing.get_args(tp)
        return base, meta
    return tp, []


def _check_annotation(tp: Any, where: str, nested: bool = False) -> None:
    """Raise ToolDefinitionError unless ``tp`` has a faithful, grammar-friendly JSON Schema."""
    tp, _ = _strip_annotated(tp)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is type(None) or tp is None:
        return
    if tp is Any:
        if nested:
            return
        raise ToolDefinitionError(
            f"{where}: Any is only allowed inside a container (list[Any], dict[str, Any])",
            hint=SUPPORTED_HINT,
        )
    if isinstance(tp, type):
        if tp in _SCALARS:
            return
        if issubclass(tp, enum.Enum) or issubclass(tp, BaseModel):
            return
        if tp in (list, tuple, dict, set, frozenset):
            raise ToolDefinitionError(
                f"{where}: bare {tp.__name__} has no item type",
                hint=f"write {tp.__name__}[str] or similar; {SUPPORTED_HINT}",
            )
    if origin is Literal:
        for value in args:
            if not isinstance(value, (str, int, float, bool, type(None))):
                raise ToolDefinitionError(
                    f"{where}: Literal value {value!r} is not a JSON scalar", hint=SUPPORTED_HINT
                )
        return
    if origin in (Union, types.UnionType):
        for arg in args:
            _check_annotation(arg, where, nested)
        return
    if origin in (list, collections.abc.Sequence) and args:
        _check_annotation(args[0], where, nested=True)
        return
    if origin is tuple and args:
        for arg in args:
            if arg is not Ellipsis:
                _check_annotation(arg, where, nested=True)
        return
    if origin in (dict, collections.abc.Mapping) and args:
        key, value = args
        if _strip_annotated(key)[0] is not str:
            raise ToolDefinitionError(
                f"{where}: dict keys must be str (JSON object keys are strings), not {key!r}",
                hint=SUPPORTED_HINT,
            )
        _check_annotation(value, where, nested=True)
        return
    raise ToolDefinitionError(
        f"{where}: unsupported annotation {_type_name(tp)}", hint=SUPPORTED_HINT
    )


def _type_name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) else repr(tp).replace("typing.", "")


def _type_hints(fn: Callable, name: str) -> dict[str, Any]:
    target = inspect.unwrap(fn)
    target = getattr(target, "__func__", target)
    if not (inspect.isfunction(target) or inspect.ismethod(target)):
        target = getattr(target, "__call__", target)  # noqa: B004 - callable instances
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception as exc:  # NameError for unresolvable string annotations, TypeError, ...
        raise ToolDefinitionError(
            f"tool {name!r}: cannot resolve the type annotations of {fn!r}: {exc}",
            hint="define every type used in the annotations before the function",
        ) from exc


def model_from_function(
    fn: Callable, name: str
) -> tuple[type[BaseModel], str, dict[str, str], dict[str, str]]:
    """Build the arguments model of ``fn``.

    Returns (model, docstring summary, {parameter: description}, {parameter: field name}); the
    field name differs from the parameter name only where pydantic cannot use it directly
    (leading underscore, or a BaseModel attribute such as ``json``): the parameter is then the
    field's alias, so the schema and the validated dict still use the parameter's name.
    """
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise ToolDefinitionError(
            f"tool {name!r}: cannot read the signature of {fn!r}: {exc}",
            hint="pass a plain Python function with annotated parameters",
        ) from exc
    hints = _type_hints(fn, name)
    summary, docs = parse_docstring(inspect.getdoc(fn))
    fields: dict[str, Any] = {}
    names: dict[str, str] = {}
    for i, (pname, param) in enumerate(sig.parameters.items()):
        where = f"tool {name!r}, parameter {pname!r}"
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            star = "*" if param.kind is param.VAR_POSITIONAL else "**"
            raise ToolDefinitionError(
                f"{where}: {star}{pname} cannot be described to a model",
                hint="list every argument as a named, annotated parameter",
            )
        if param.kind is param.POSITIONAL_ONLY:
            raise ToolDefinitionError(
                f"{where}: positional-only parameters are not supported",
                hint="remove the '/' from the signature",
            )
        if pname not in hints:
            raise ToolDefinitionError(
                f"{where}: missing type annotation",
                hint=f"annotate it, e.g. '{pname}: str'; {SUPPORTED_HINT}",
            )
        annotation = hints[pname]
        _check_annotation(annotation, where)
        base, meta = _strip_annotated(annotation)
        description = docs.get(pname)
        for item in meta:  # Annotated[str, "what it is"] is a description too
            if isinstance(item, str):
                description = clip(item)
        if any(isinstance(item, str) for item in meta):
            meta = [item for item in meta if not isinstance(item, str)]
            annotation = Annotated[(base, *meta)] if meta else base
        field_name = pname
        extra: dict[str, Any] = {}
        if pname.startswith("_") or pname in _BASE_MODEL_ATTRS:
            field_name, extra["alias"] = f"arg_{i}", pname
        default = param.default
        if isinstance(default, FieldInfo):  # def f(x: int = Field(3, ge=0))
            annotation = Annotated[annotation, default]
            default = default.default if default.default is not ... else inspect.Parameter.empty
        if description:
            extra["description"] = description
        field = Field(... if default is inspect.Parameter.empty else default, **extra)
        fields[field_name] = (annotation, field)
        names[pname] = field_name
    model_name = "".join(part[:1].upper() + part[1:] for part in re.split(r"[_\-]", name)) or "T"
    try:
        model = create_model(
            f"{model_name}Arguments", __config__=ConfigDict(extra="forbid"), **fields
        )
        model.model_json_schema()
    except ToolDefinitionError:
        raise
    except Exception as exc:
        raise ToolDefinitionError(
            f"tool {name!r}: pydantic cannot build an arguments model: {clip(str(exc), 300)}",
            hint=SUPPORTED_HINT,
        ) from exc
    return model, summary, docs, names


# --- schema compaction --------------------------------------------------------------------------

_SCHEMA_KEYS = (
    "items",
    "additionalProperties",
    "not",
    "contains",
    "propertyNames",
    "if",
    "then",
    "else",
    "unevaluatedItems",
    "unevaluatedProperties",
    "additionalItems",
)
_SCHEMA_LIST_KEYS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_MAP_KEYS = ("properties", "patternProperties", "dependentSchemas", "$defs", "definitions")


def _children(schema: dict) -> list[dict]:
    out: list[dict] = []
    for key in _SCHEMA_KEYS:
        if isinstance(schema.get(key), dict):
            out.append(schema[key])
    for key in _SCHEMA_LIST_KEYS:
        if isinstance(schema.get(key), list):
            out.extend(s for s in schema[key] if isinstance(s, dict))
    for key in _SCHEMA_MAP_KEYS:
        if isinstance(schema.get(key), dict) and key not in ("$defs", "definitions"):
            out.extend(s for s in schema[key].values() if isinstance(s, dict))
    return out


def _refs(schema: dict) -> set[str]:
    found: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            found.add(ref[len("#/$defs/") :])
        stack.extend(_children(node))
    return found


def compact_schema(schema: dict) -> dict:
    """Pydantic JSON Schema -> compact schema: no titles, non-recursive refs inlined."""
    defs: dict[str, dict] = dict(schema.get("$defs", {}))
    graph = {name: _refs(body) for name, body in defs.items()}
    recursive: set[str] = set()
    for start in defs:
        seen: set[str] = set()
        stack = list(graph[start])
        while stack:
            node = stack.pop()
            if node == start:
                recursive.add(start)
                break
            if node not in seen and node in graph:
                seen.add(node)
                stack.extend(graph[node])

    def walk(node: Any, depth: int = 0) -> Any:
        if not isinstance(node, dict):
            return node
        if depth > 64:
            raise ToolDefinitionError("schema nests too deeply", hint="simplify the types")
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            target = ref[len("#/$defs/") :]
            if target in defs and target not in recursive:
                siblings = {k: v for k, v in node.items() if k != "$ref"}
                merged = {**walk(defs[target], depth + 1), **walk(siblings, depth + 1)}
                return merged
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "title" or key in ("$defs", "definitions"):
                continue
            if key in _SCHEMA_KEYS and isinstance(value, dict):
                out[key] = walk(value, depth + 1)
            elif key in _SCHEMA_LIST_KEYS and isinstance(value, list):
                out[key] = [walk(v, depth + 1) for v in value]
            elif key in _SCHEMA_MAP_KEYS and isinstance(value, dict):
                out[key] = {k: walk(v, depth + 1) for k, v in value.items()}
            else:
                out[key] = value
        return _fold_any_of(out)

    result = walk(schema)
    kept = {name: walk(defs[name]) for name in defs if name in recursive}
    if kept:
        result["$defs"] = kept
    return result


def _fold_any_of(node: dict) -> dict:
    """``anyOf: [{type: a}, {type: b}]`` -> ``type: [a, b]`` when every branch is a bare type."""
    branches = node.get("anyOf")
    if (
        isinstance(branches, list)
        and branches
        and "type" not in node
        and all(
            isinstance(b, dict) and set(b) == {"type"} and isinstance(b["type"], str)
            for b in branches
        )
    ):
        folded = {k: v for k, v in node.items() if k != "anyOf"}
        types_ = [b["type"] for b in branches]
        return {"type": types_ if len(types_) > 1 else types_[0], **folded}
    return node
