"""Typed errors: each says what happened and what to do about it."""

from __future__ import annotations


class EdgeAgentError(Exception):
    """Base of every error edgeagent raises on purpose.

    ``message`` says what happened; ``hint`` says what to do. ``exit_code`` is what the CLI
    exits with. ``to_dict`` makes the error serializable into history and tool results.
    """

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def to_dict(self) -> dict:
        """Serializable form for the history and for tool results sent back to the model."""
        return {"type": type(self).__name__, "message": self.message, "hint": self.hint}


class ConfigError(EdgeAgentError):
    """A setting is missing or malformed."""


class CatalogError(EdgeAgentError):
    """The catalog is malformed or does not know a model id."""


class ModelNotFoundError(EdgeAgentError):
    """A model file is not on disk and cannot be fetched right now."""


class ModelFileError(EdgeAgentError):
    """A file is not a usable GGUF (empty, truncated, not GGUF at all)."""


class DownloadError(EdgeAgentError):
    """A download failed; the partial file was discarded."""


class ChecksumError(DownloadError):
    """A downloaded file's sha256 does not match the catalog."""


class RuntimeLoadError(EdgeAgentError):
    """llama.cpp could not load or run a model."""


class RequestCancelled(EdgeAgentError):
    """The user stopped a request (Esc in the app); what ran until then is kept."""


class GenerationLimitError(EdgeAgentError):
    """A decode hit its token or wall-clock bound."""


class GrammarError(EdgeAgentError):
    """A JSON schema cannot be compiled to a grammar; names the keyword and its JSON path."""

    exit_code = 2

    def __init__(
        self, message: str, keyword: str | None = None, path: str = "$", hint: str | None = None
    ) -> None:
        super().__init__(message, hint)
        self.keyword = keyword
        self.path = path

    def to_dict(self) -> dict:
        return {**super().to_dict(), "keyword": self.keyword, "path": self.path}


class ToolDefinitionError(EdgeAgentError):
    """A tool cannot be built from what was given (bad name, unsupported signature)."""


class ToolValidationError(EdgeAgentError):
    """A proposed call's arguments are invalid (schema or semantic check)."""

    def __init__(self, message: str, tool: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.tool = tool


class ToolExecutionError(EdgeAgentError):
    """A tool raised, timed out or produced unusable output while running."""


class PolicyError(EdgeAgentError):
    """A call is not allowed by policy (outside allowed roots, declined, network off)."""


class ConfirmationUnavailable(PolicyError):
    """Nobody can be asked to confirm a call (no terminal, no app): it is not run."""


class RemoteError(EdgeAgentError):
    """The remote OpenAI-compatible endpoint failed, timed out or returned garbage."""


class OfflineError(EdgeAgentError):
    """The network is needed but not allowed."""


class StoreError(EdgeAgentError):
    """The history database is unreadable or corrupt."""


class EnvelopeParseError(EdgeAgentError):
    """Model output looked like a tool call but is not one in the envelope's wire format."""


class AdapterError(EdgeAgentError):
    """A LoRA adapter is unreadable, for another base model, or failed to build or load."""


class AdaptDependencyError(EdgeAgentError):
    """Training needs the optional ``[adapt]`` extra (torch, transformers, peft)."""


class DatasetError(EdgeAgentError):
    """A training dataset line is not in the OpenAI chat format edgeagent reads."""
