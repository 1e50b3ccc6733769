"""Type-safe tool registry: Tool, builders, the @tool decorator and ToolRegistry.

A ``Tool`` is built from a typed Python function (signature, defaults and docstring -> a pydantic
model -> JSON Schema), from a pydantic model class, or from an OpenAI-format tool dict. Tools are
found among the built-ins (passed in), the entry-point group ``edgeagent.tools`` and user files
given with ``--tools FILE.py`` (``edgeagent.tools.discovery``; ``load_tools_file``,
``load_entry_point_tools`` and ``build_registry`` are importable from this module too).

Validation is strict. Function and model tools validate with pydantic in strict JSON mode:
``"5"`` is not an integer, ``1`` is not a boolean, ``5.0`` is not an integer (``5`` is a valid
number), enum values and ISO dates are accepted as JSON strings. OpenAI-dict tools validate
with ``jsonschema`` against their own schema (format checks on). For every tool an argument
that the schema does not declare is rejected, even when a dict tool's schema omits
``additionalProperties`` (a Python call with an unknown keyword fails too).
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import re
import typing
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from edgeagent.errors import ToolDefinitionError, ToolExecutionError, ToolValidationError
from edgeagent.tools.argcheck import (
    jsonschema_problem,
    jsonschema_validator,
    pydantic_problems,
    short_json,
    type_label,
)
from edgeagent.tools.signature import clip, compact_schema, model_from_function, parse_docstring

Risk = Literal["read", "write", "network"]
RISKS: tuple[str, ...] = typing.get_args(Risk)
NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_-]{0,63}$")
TOOL_ATTR = "__edgeagent_tool__"
MAX_PROBLEMS = 5

Validator = Callable[[dict, Any], None]


def check_name(name: Any) -> str:
    """Return ``name`` if it is a valid tool name, else raise ToolDefinitionError."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ToolDefinitionError(
            f"invalid tool name {name!r}",
            hint="use 1-64 letters, digits, '_' or '-', starting with a letter or '_'",
        )
    return name


@dataclass(frozen=True, eq=False)
class Tool:
    """One callable (or schema-only) tool.

    ``parameters`` is the compact JSON Schema (type object) of the arguments. ``fn`` is None for
    schema-only OpenAI-dict tools: they can be proposed and validated but not executed.
    ``args_model`` is the pydantic model validating the arguments (None for OpenAI-dict tools,
    which validate with jsonschema). ``validators`` are semantic checks called as
    ``validator(arguments, context)`` after schema validation; they raise ToolValidationError.
    ``call_style`` says how ``call`` passes arguments: ``"kwargs"`` (``fn(**arguments)``) or
    ``"model"`` (``fn(model_instance)``, for tools built from a pydantic model).
    ``source`` is ``"builtin"``, ``"entrypoint:DIST"``, ``"file:/path"``, ``"openai"``,
    ``"model"`` or ``"function"``.
    """

    name: str
    description: str
    parameters: dict
    fn: Callable[..., Any] | None = None
    risk: Risk = "read"
    local_only: bool = False
    timeout_s: float | None = None
    args_model: type[BaseModel] | None = None
    validators: tuple[Validator, ...] = ()
    source: str = "function"
    call_style: Literal["kwargs", "model"] = "kwargs"
    # For tools whose result *is* the answer (calculator, clock): (arguments, output) ->
    # (facts an answer must state at least one of, the answer to show when it states none).
    grounding: Callable[[dict, str], tuple[tuple[str, ...], str] | None] | None = None
    # more words a request may use for this tool (agent.retrieval), beyond its name and texts
    keywords: tuple[str, ...] = ()
    # string arguments whose value is a part of the user's request (a search query, a note):
    # the grammar offers the request's word spans (agent.spans) instead of free text
    request_spans: tuple[str, ...] = ()
    # (request, arguments) pairs shown in the system prompt when settings.exemplars is on
    examples: tuple[tuple[str, dict], ...] = ()
    # the output is text whose lines an answer may rest on: the relevant ones are quoted under
    # the answer (agent.answer.cite_lines)
    cite: bool = False

    def __post_init__(self) -> None:
        check_name(self.name)
        if self.risk not in RISKS:
            raise ToolDefinitionError(
                f"tool {self.name!r}: unknown risk {self.risk!r}",
                hint=f"use one of {', '.join(RISKS)}",
            )
        if self.timeout_s is not None and not self.timeout_s > 0:
            raise ToolDefinitionError(
                f"tool {self.name!r}: timeout_s must be positive, got {self.timeout_s!r}",
                hint="pass a number of seconds, or None for the default",
            )
        if not isinstance(self.parameters, dict) or self.parameters.get("type") != "object":
            raise ToolDefinitionError(
                f"tool {self.name!r}: parameters must be a JSON Schema of type 'object'",
                hint='e.g. {"type": "object", "properties": {...}, "required": [...]}',
            )
        object.__setattr__(self, "description", clip(self.description or ""))
        object.__setattr__(self, "validators", tuple(self.validators))

    # --- views ----------------------------------------------------------------------------------

    def to_openai(self) -> dict:
        """OpenAI tool format: ``{"type": "function", "function": {name, description, parameters}}``."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": copy.deepcopy(self.parameters),
            },
        }

    @property
    def executable(self) -> bool:
        """Whether the tool has an implementation (False for schema-only dict tools)."""
        return self.fn is not None

    def describe_arguments(self) -> str:
        """One line listing the arguments, e.g. ``a: integer (required), unit: "c"|"f" = "c"``."""
        props = self.parameters.get("properties") or {}
        required = set(self.parameters.get("required") or ())
        parts = []
        for key, schema in props.items():
            label = f"{key}: {type_label(schema)}"
            if key in required:
                label += " (required)"
            elif isinstance(schema, dict) and "default" in schema:
                label += f" = {short_json(schema['default'])}"
            parts.append(label)
        return ", ".join(parts) if parts else "no arguments"

    # --- validation -----------------------------------------------------------------------------

    def validate_arguments(self, arguments: Any) -> dict:
        """Schema-validate ``arguments`` and return a normalized, JSON-compatible dict.

        Defaults are filled in. ``arguments`` may be a dict or a JSON object string (as OpenAI
        returns it). Raises ToolValidationError whose message is one line naming each bad
        argument and its problem; its hint lists the expected arguments.
        """
        args = self._as_dict(arguments)
        if self.args_model is not None:
            return self._validate_model(args).model_dump(mode="json", by_alias=True)
        return self._validate_schema(args)

    def check_arguments(self, arguments: Any, context: Any = None) -> dict:
        """``validate_arguments`` and then each semantic validator with ``(arguments, context)``."""
        args = self.validate_arguments(arguments)
        self.check_semantics(args, context)
        return args

    def check_semantics(self, args: dict, context: Any = None) -> None:
        """Each semantic validator on schema-valid ``args``; ToolValidationError names the
        failure (a validator that crashes is a failure too, never a pass)."""
        for validator in self.validators:
            try:
                validator(args, context)
            except ToolValidationError as exc:
                if exc.tool is None:
                    exc.tool = self.name
                raise
            except Exception as exc:
                vname = getattr(validator, "__name__", repr(validator))
                raise self._error(
                    [f"validator {vname} failed: {type(exc).__name__}: {exc}"]
                ) from exc

    def call(self, arguments: Any) -> Any:
        """Validate ``arguments`` (schema only) and run ``fn`` with typed values.

        Function tools get keyword arguments of the annotated Python types (Enum members,
        pydantic models, dates); model tools get one model instance; dict tools get the
        validated JSON dict as keyword arguments. Exceptions from ``fn`` propagate unchanged:
        the executor turns them into error results. Timeouts are the executor's job too.
        """
        if self.fn is None:
            raise ToolExecutionError(
                f"tool {self.name!r} has no implementation (schema only)",
                hint="build it from a function, or pass fn= to tool_from_openai",
            )
        args = self._as_dict(arguments)
        if self.args_model is None:
            return self.fn(**self._validate_schema(args))
        model = self._validate_model(args)
        if self.call_style == "model":
            return self.fn(model)
        kwargs = {
            (info.alias or field): getattr(model, field)
            for field, info in type(model).model_fields.items()
        }
        return self.fn(**kwargs)

    # --- internals ------------------------------------------------------------------------------

    def _error(self, problems: list[str]) -> ToolValidationError:
        shown = problems[:MAX_PROBLEMS]
        if len(problems) > MAX_PROBLEMS:
            shown.append(f"and {len(problems) - MAX_PROBLEMS} more")
        message = " ".join(f"{self.name}: {'; '.join(shown)}".split())
        return ToolValidationError(
            message, tool=self.name, hint=f"expected arguments: {self.describe_arguments()}"
        )

    def _as_dict(self, arguments: Any) -> dict:
        if isinstance(arguments, (str, bytes)):
            try:
                arguments = json.loads(arguments or "{}")
            except ValueError as exc:
                raise self._error([f"arguments are not valid JSON ({exc})"]) from exc
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise self._error([f"arguments must be a JSON object, got {type(arguments).__name__}"])
        return arguments

    def _unknown(self, args: dict, known: Iterable[str]) -> list[str]:
        known = list(known)
        expected = ", ".join(known) if known else "none"
        return [
            f"unknown argument {key!r} (expected: {expected})" for key in args if key not in known
        ]

    def _validate_model(self, args: dict) -> BaseModel:
        model_cls = self.args_model
        assert model_cls is not None
        known = [info.alias or name for name, info in model_cls.model_fields.items()]
        problems = self._unknown(args, known)
        try:
            payload = json.dumps(args)
        except (TypeError, ValueError) as exc:
            raise self._error([f"arguments are not JSON-serializable ({exc})"]) from exc
        try:
            model = model_cls.model_validate_json(payload, strict=True)
        except ValidationError as exc:
            problems += pydantic_problems(exc, args)
            raise self._error(problems) from None
        if problems:
            raise self._error(problems)
        return model

    @cached_property
    def _schema_validator(self) -> Any:
        return jsonschema_validator(self.parameters, self.name)

    def _validate_schema(self, args: dict) -> dict:
        schema = self.parameters
        problems: list[str] = []
        if (
            isinstance(schema.get("properties"), dict)
            and "additionalProperties" not in schema
            and "patternProperties" not in schema
        ):
            problems += self._unknown(args, schema["properties"])
        errors = sorted(
            self._schema_validator.iter_errors(args), key=lambda e: [str(p) for p in e.path]
        )
        for err in errors:
            problems.append(jsonschema_problem(err))
        if problems:
            raise self._error(problems)
        out = copy.deepcopy(args)
        for key, prop in (schema.get("properties") or {}).items():
            if key not in out and isinstance(prop, dict) and "default" in prop:
                out[key] = copy.deepcopy(prop["default"])
        return out


# --- builders -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _BuildOptions:
    """The builder arguments every kind of tool passes to ``Tool`` unchanged."""

    risk: Risk
    local_only: bool
    timeout_s: float | None
    validators: Iterable[Validator]

    def build(
        self,
        name: str,
        description: str,
        parameters: dict,
        fn: Callable[..., Any] | None,
        args_model: type[BaseModel] | None,
        source: str,
        call_style: Literal["kwargs", "model"] = "kwargs",
    ) -> Tool:
        """The Tool with these options and the given definition."""
        return Tool(
            name=name,
            description=description,
            parameters=parameters,
            fn=fn,
            risk=self.risk,
            local_only=self.local_only,
            timeout_s=self.timeout_s,
            args_model=args_model,
            validators=tuple(self.validators),
            source=source,
            call_style=call_style,
        )


def _object_schema(raw: dict) -> dict:
    """A pydantic schema compacted, without its top-level description, with ``properties``."""
    parameters = compact_schema(raw)
    parameters.pop("description", None)
    parameters.setdefault("properties", {})
    return parameters


def _function_tool(
    fn: Callable[..., Any], name: str | None, description: str | None, options: _BuildOptions
) -> Tool:
    """``tool_from_function`` with its pass-through arguments bundled."""
    if not callable(fn):
        raise ToolDefinitionError(f"{fn!r} is not callable", hint="pass a function")
    if name is None and not isinstance(getattr(fn, "__name__", None), str):
        raise ToolDefinitionError(
            f"cannot tell the tool name of {fn!r}", hint="pass name='...' explicitly"
        )
    tool_name = check_name(name if name is not None else fn.__name__)
    model, summary, _, _ = model_from_function(fn, tool_name)
    parameters = _object_schema(model.model_json_schema(by_alias=True))
    text = description if description is not None else summary
    return options.build(tool_name, text, parameters, fn, model, "function")


def tool_from_function(
    fn: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    risk: Risk = "read",
    local_only: bool = False,
    timeout_s: float | None = None,
    validators: Iterable[Validator] = (),
) -> Tool:
    """Build a Tool from a typed function: signature, defaults and docstring -> JSON Schema.

    The docstring's first paragraph is the description; ``Args:`` lines describe parameters.
    """
    options = _BuildOptions(risk, local_only, timeout_s, validators)
    return _function_tool(fn, name, description, options)


def tool_from_model(
    model_cls: type[BaseModel],
    fn: Callable[[Any], Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    risk: Risk = "read",
    local_only: bool = False,
    timeout_s: float | None = None,
    validators: Iterable[Validator] = (),
) -> Tool:
    """Build a Tool whose arguments are ``model_cls``; ``fn`` (optional) receives the instance.

    The name defaults to the class name, the description to its docstring's first paragraph;
    ``Args:`` lines of the class docstring describe fields lacking a ``Field(description=...)``.
    """
    if not (isinstance(model_cls, type) and issubclass(model_cls, BaseModel)):
        raise ToolDefinitionError(f"{model_cls!r} is not a pydantic model class")
    tool_name = check_name(name if name is not None else model_cls.__name__)
    try:
        raw = model_cls.model_json_schema(by_alias=True)
    except Exception as exc:
        raise ToolDefinitionError(
            f"tool {tool_name!r}: pydantic cannot produce a JSON Schema for "
            f"{model_cls.__name__}: {clip(str(exc), 300)}",
            hint="use JSON-friendly field types",
        ) from exc
    parameters = _object_schema(raw)
    parameters["additionalProperties"] = False
    summary, docs = parse_docstring(model_cls.__doc__)
    for key, prop in parameters["properties"].items():
        if isinstance(prop, dict) and "description" not in prop and key in docs:
            prop["description"] = docs[key]
    options = _BuildOptions(risk, local_only, timeout_s, validators)
    text = description if description is not None else summary
    return options.build(tool_name, text, parameters, fn, model_cls, "model", call_style="model")


def tool_from_openai(
    d: dict,
    fn: Callable[..., Any] | None = None,
    *,
    risk: Risk = "read",
    local_only: bool = False,
    timeout_s: float | None = None,
    validators: Iterable[Validator] = (),
) -> Tool:
    """Build a Tool from ``{"type": "function", "function": {...}}`` or a bare
    ``{"name", "description", "parameters"}`` dict (``input_schema`` is accepted too).

    Without ``fn`` the tool is schema-only. The schema is checked with jsonschema now, so a
    malformed schema fails here rather than at the first call.
    """
    if not isinstance(d, dict):
        raise ToolDefinitionError(f"an OpenAI tool must be a dict, got {type(d).__name__}")
    if "function" in d and isinstance(d["function"], dict):
        if d.get("type", "function") != "function":
            raise ToolDefinitionError(f"unsupported tool type {d.get('type')!r}")
        body = d["function"]
    elif "name" in d:
        body = d
    else:
        raise ToolDefinitionError(
            "an OpenAI tool dict needs 'function' or 'name'",
            hint='use {"type": "function", "function": {"name": ..., "parameters": {...}}}',
        )
    name = check_name(body.get("name"))
    parameters = body.get("parameters", body.get("input_schema"))
    if parameters is None:
        parameters = {"type": "object", "properties": {}}
    if not isinstance(parameters, dict):
        raise ToolDefinitionError(f"tool {name!r}: parameters must be a JSON object")
    parameters = copy.deepcopy(parameters)
    if "type" not in parameters and "properties" in parameters:
        parameters["type"] = "object"
    description = body.get("description") or ""
    if not isinstance(description, str):
        raise ToolDefinitionError(f"tool {name!r}: description must be a string")
    options = _BuildOptions(risk, local_only, timeout_s, validators)
    made = options.build(name, description, parameters, fn, None, "openai")
    _ = made._schema_validator  # check the schema now
    return made


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    risk: Risk = "read",
    local_only: bool = False,
    timeout_s: float | None = None,
    validators: Iterable[Validator] = (),
) -> Any:
    """Mark a function as a tool: ``@tool`` or ``@tool(risk="write", ...)``.

    The Tool is built at decoration time (a bad signature fails at import, naming the
    parameter) and stored on the function as ``fn.__edgeagent_tool__``. The function itself is
    returned unchanged and stays callable; ``as_tool(fn)`` returns the stored Tool.
    """
    options = _BuildOptions(risk, local_only, timeout_s, validators)

    def mark(f: Callable[..., Any]) -> Callable[..., Any]:
        built = _function_tool(f, name, description, options)
        try:
            setattr(f, TOOL_ATTR, built)
        except (AttributeError, TypeError) as exc:
            raise ToolDefinitionError(
                f"@tool cannot mark {f!r}", hint="decorate a plain module-level function"
            ) from exc
        return f

    return mark(fn) if fn is not None else mark


def marked_tool(obj: Any) -> Tool | None:
    """The Tool stored on a @tool-decorated function, else None."""
    try:
        found = inspect.getattr_static(obj, TOOL_ATTR, None)
    except Exception:
        return None
    return found if isinstance(found, Tool) else None


def as_tool(obj: Any) -> Tool:
    """Tool | @tool function | plain typed function | pydantic model class | OpenAI dict -> Tool."""
    if isinstance(obj, Tool):
        return obj
    marked = marked_tool(obj)
    if marked is not None:
        return marked
    if isinstance(obj, dict):
        return tool_from_openai(obj)
    if isinstance(obj, type) and issubclass(obj, BaseModel):
        return tool_from_model(obj)
    if callable(obj) and not isinstance(obj, type):
        return tool_from_function(obj)
    raise ToolDefinitionError(
        f"cannot make a tool from {obj!r}",
        hint="pass a Tool, a typed function, a pydantic model class or an OpenAI tool dict",
    )


# --- registry -----------------------------------------------------------------------------------


class ToolRegistry:
    """An ordered set of uniquely named tools.

    ``load_errors`` collects plugin problems found by ``build_registry`` (warnings, not
    failures) so the CLI can show them.
    """

    def __init__(self, tools: Iterable[Any] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        self.load_errors: list[ToolDefinitionError] = []
        for item in tools:
            self.add(item)

    def add(self, tool_or_callable: Any) -> Tool:
        """Add a tool (anything ``as_tool`` accepts); a duplicate name is a ToolDefinitionError."""
        made = as_tool(tool_or_callable)
        if made.name in self._tools:
            other = self._tools[made.name]
            raise ToolDefinitionError(
                f"duplicate tool name {made.name!r} (from {made.source}; "
                f"already defined by {other.source})",
                hint="rename one of them, e.g. @tool(name=...)",
            )
        self._tools[made.name] = made
        return made

    def extend(self, items: Iterable[Any]) -> None:
        """Add several tools."""
        for item in items:
            self.add(item)

    def get(self, name: str) -> Tool:
        """The tool called ``name``; unknown -> ToolValidationError listing the available ones."""
        try:
            return self._tools[name]
        except (KeyError, TypeError):
            available = ", ".join(self._tools) or "none"
            raise ToolValidationError(
                f"unknown tool {name!r}; available tools: {available}",
                tool=name if isinstance(name, str) else None,
                hint="call one of the available tools",
            ) from None

    def names(self) -> list[str]:
        """Tool names in registration order."""
        return list(self._tools)

    def __iter__(self) -> Iterator[Tool]:
        return iter(list(self._tools.values()))

    def __len__(self) -> int:
        return len(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __repr__(self) -> str:
        return f"ToolRegistry({self.names()!r})"

    def subset(self, names: Iterable[str]) -> ToolRegistry:
        """A new registry with only ``names`` (kept in this registry's order)."""
        wanted = {self.get(n).name for n in names}
        return ToolRegistry(t for t in self if t.name in wanted)

    def to_openai(self, exclude_local_only: bool = False) -> list[dict]:
        """All tools in OpenAI format; ``exclude_local_only`` for anything sent to a remote LLM."""
        return [t.to_openai() for t in self if not (exclude_local_only and t.local_only)]

    def fingerprint(self) -> str:
        """sha256 of the tool schemas as compact JSON, in order (a prompt/grammar cache key).

        Key and tool order count: they change the prompt text and the grammar.
        """
        text = json.dumps(self.to_openai(), ensure_ascii=False, separators=(",", ":"), default=repr)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


_DISCOVERY = ("load_tools_file", "load_entry_point_tools", "build_registry", "ENTRY_POINT_GROUP")


def __getattr__(name: str) -> Any:
    """Discovery lives in ``edgeagent.tools.discovery``; re-exported lazily (no import cycle)."""
    if name in _DISCOVERY:
        from edgeagent.tools import discovery

        return getattr(discovery, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
