"""Executor: validate -> policy -> confirm -> run with a timeout -> capped text output.

Tool output is data. The executor converts it to text and caps it; it never parses, follows or
acts on it. Whatever a file or web page says, the only way a tool runs is a call that passed
validation and policy here.

Timeouts: each call runs in its own daemon thread and the executor waits at most the tool's
``timeout_s`` (else the policy's). On timeout the result has status "timeout" and the thread is
abandoned: Python cannot kill a thread, so it keeps running in the background until the tool
returns (daemon threads never block interpreter exit). The built-in tools bound their own work
(size and file-count caps, an HTTP timeout, a search time budget), so an abandoned built-in ends
soon. We chose threads over subprocesses because tools close over in-process state (the
context, the notes store, user closures) that would not survive pickling, and a process per
call costs ~50-100 ms on a small machine. A user tool that must be killable should run its
work in a subprocess itself (e.g. ``subprocess.run(..., timeout=...)``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import BaseModel

from edgeagent.errors import ConfirmationUnavailable, PolicyError, ToolValidationError
from edgeagent.tools.policy import Policy
from edgeagent.tools.registry import Tool, ToolRegistry
from edgeagent.types import CallStatus, ToolCall, ToolResult

logger = logging.getLogger("edgeagent.tools")

Confirm = Callable[[ToolCall, Tool], bool]
MAX_ERROR_CHARS = 2000


def output_text(value: Any) -> str:
    """A tool's return value as text: str as is, dict/list/tuple as compact JSON, else str()."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return str(value)


def cap_text(text: str, cap: int) -> tuple[str, bool]:
    """Cut ``text`` to ``cap`` characters plus a ``[... truncated N chars]`` marker."""
    if len(text) <= cap:
        return text, False
    return f"{text[:cap]}\n[... truncated {len(text) - cap} chars]", True


def _clip_error(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS] + " [...]"


class Executor:
    """Runs validated tool calls under a Policy.

    ``confirm(call, tool) -> bool`` is asked before every call that needs confirmation (write
    and network tiers unless ``policy.auto_approve``); without it such calls are declined.
    ``run`` also records the outcome on the call (``call.status``, ``call.error``).
    """

    def __init__(
        self,
        registry: ToolRegistry | Iterable[Any],
        policy: Policy,
        context: Any,
        confirm: Confirm | None = None,
        *,
        max_workers: int = 4,
    ) -> None:
        self.registry = registry if isinstance(registry, ToolRegistry) else ToolRegistry(registry)
        self.policy = policy
        self.context = context
        self.confirm = confirm
        self.max_workers = max(1, max_workers)

    # --- one call -------------------------------------------------------------------------------

    def run(self, call: ToolCall, *, validated: bool = False) -> ToolResult:
        """Validate, apply policy, confirm, run with a timeout and cap the output.

        ``validated``: the call's arguments are already the normalized output of
        ``agent.validate.validate_call`` (the agent validates once); they are run as they are.
        ``duration_s`` is the call's own time: the user's time in the confirmation prompt is
        ``wait_s``, not part of it.
        """
        start = time.perf_counter()
        waited: list[float] = []
        result = self._run(call, waited, validated)
        result.wait_s = round(sum(waited), 6)
        result.duration_s = round(max(0.0, time.perf_counter() - start - result.wait_s), 6)
        call.status = result.status
        call.error = result.error
        return result

    def _result(self, call: ToolCall, status: CallStatus, **kw: Any) -> ToolResult:
        if kw.get("error") is not None:
            kw["error"] = _clip_error(kw["error"])
        return ToolResult(call_id=call.id, name=call.name, status=status, **kw)

    def _run(self, call: ToolCall, waited: list[float], validated: bool = False) -> ToolResult:
        try:
            tool = self.registry.get(call.name)
        except ToolValidationError as exc:
            return self._result(call, "invalid", error=str(exc), error_type=type(exc).__name__)
        try:
            args = (
                call.arguments if validated else tool.check_arguments(call.arguments, self.context)
            )
        except ToolValidationError as exc:
            return self._result(call, "invalid", error=str(exc), error_type=type(exc).__name__)
        except Exception as exc:  # a bug in validation itself (validators are wrapped already)
            return self._result(
                call, "error", error=f"validation failed: {exc}", error_type=type(exc).__name__
            )
        if not tool.executable:
            return self._result(
                call,
                "not_executed",
                error=f"tool {tool.name!r} has no implementation (schema only)",
                error_type="ToolExecutionError",
            )
        try:
            self.policy.check(tool)
        except PolicyError as exc:
            return self._result(call, "declined", error=str(exc), error_type=type(exc).__name__)
        if self.policy.needs_confirmation(tool):
            asked = time.perf_counter()
            declined = self._ask(call, tool)
            waited.append(time.perf_counter() - asked)
            if declined is not None:
                return self._result(call, "declined", error=declined, error_type="PolicyError")
        return self._execute(call, tool, args)

    def _ask(self, call: ToolCall, tool: Tool) -> str | None:
        """None if confirmed, else the reason it was declined."""
        if self.confirm is None:
            return (
                f"not run: {tool.name} is a {tool.risk} tool and needs confirmation, and none "
                "was given; rerun with --yes to pre-approve"
            )
        try:
            approved = bool(self.confirm(call, tool))
        except ConfirmationUnavailable as exc:
            return f"not run: {tool.name} needs confirmation ({exc.message}); rerun with --yes"
        except Exception as exc:
            logger.warning("confirmation callback failed for %s: %s", tool.name, exc)
            return f"the confirmation prompt failed ({type(exc).__name__}: {exc}); not run"
        return None if approved else f"the user declined to run {tool.name}"

    def _execute(self, call: ToolCall, tool: Tool, args: dict) -> ToolResult:
        timeout = tool.timeout_s or self.policy.timeout_s
        box: dict[str, Any] = {}
        done = threading.Event()

        def target() -> None:
            try:
                box["value"] = tool.call(args)
            except BaseException as exc:  # SystemExit in a tool must not vanish silently
                box["error"] = exc
            finally:
                done.set()

        worker = threading.Thread(target=target, name=f"edgeagent-tool-{tool.name}", daemon=True)
        worker.start()
        if not done.wait(timeout):
            logger.warning(
                "tool %s timed out after %.1f s; its thread is abandoned", tool.name, timeout
            )
            return self._result(
                call,
                "timeout",
                error=f"{tool.name} did not finish within {timeout:g} s and was abandoned",
                error_type="TimeoutError",
            )
        if "error" in box:
            exc = box["error"]
            message = str(exc) or repr(exc)  # EdgeAgentError: "message (hint)"
            return self._result(call, "error", error=message, error_type=type(exc).__name__)
        try:
            text = output_text(box.get("value"))
        except Exception as exc:
            return self._result(
                call,
                "error",
                error=f"the output of {tool.name} cannot be turned into text: {exc}",
                error_type="ToolExecutionError",
            )
        text, truncated = cap_text(text, self.policy.output_cap)
        return self._result(call, "ok", output=text, truncated=truncated)

    # --- several calls --------------------------------------------------------------------------

    def _is_read_only(self, call: ToolCall) -> bool:
        return call.name in self.registry and self.registry.get(call.name).risk == "read"

    def run_many(self, calls: Sequence[ToolCall], *, validated: bool = False) -> list[ToolResult]:
        """Run calls, results in the given order: read-only tools concurrently first, then the
        others (writes, network, unknown tools) one after another in order (``validated`` as
        in ``run``)."""
        results: list[ToolResult | None] = [None] * len(calls)
        reads = [i for i, c in enumerate(calls) if self._is_read_only(c)]
        read_set = set(reads)
        others = [i for i in range(len(calls)) if i not in read_set]
        if len(reads) > 1:
            with ThreadPoolExecutor(
                max_workers=min(self.max_workers, len(reads)), thread_name_prefix="edgeagent-read"
            ) as pool:
                futures = {i: pool.submit(self.run, calls[i], validated=validated) for i in reads}
                for i, future in futures.items():
                    results[i] = future.result()
        else:
            for i in reads:
                results[i] = self.run(calls[i], validated=validated)
        for i in others:
            results[i] = self.run(calls[i], validated=validated)
        return [r for r in results if r is not None]
