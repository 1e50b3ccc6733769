"""Validator-first: parse -> schema (pydantic/jsonschema) -> semantic validators -> only then run."""

from __future__ import annotations

from dataclasses import dataclass

from edgeagent.errors import ToolValidationError
from edgeagent.types import ToolCall


@dataclass
class Validation:
    """What validation made of one proposed call (the counts behind the validity metrics)."""

    call: ToolCall
    known_tool: bool
    schema_valid: bool
    semantic_valid: bool
    error: str | None = None

    @property
    def valid(self) -> bool:
        return self.known_tool and self.schema_valid and self.semantic_valid


def validate_call(call: ToolCall, registry, context=None) -> Validation:
    """Validate ``call`` against its tool; on success its arguments are replaced by the normalized ones."""
    if call.name not in registry:
        error = f"unknown tool {call.name!r}; available: {', '.join(registry.names())}"
        call.status, call.error = "invalid", error
        return Validation(call, False, False, False, error)
    tool = registry.get(call.name)
    try:
        arguments = tool.validate_arguments(call.arguments)
    except ToolValidationError as exc:
        call.status, call.error = "invalid", exc.message
        return Validation(call, True, False, False, exc.message)
    for validator in tool.validators:
        try:
            validator(arguments, context)
        except ToolValidationError as exc:
            call.status, call.error = "invalid", exc.message
            return Validation(call, True, True, False, exc.message)
        except Exception as exc:  # a broken validator must not let a call through
            error = f"validator {getattr(validator, '__name__', validator)} failed: {exc}"
            call.status, call.error = "invalid", error
            return Validation(call, True, True, False, error)
    call.arguments = arguments
    call.error = None
    return Validation(call, True, True, True)
