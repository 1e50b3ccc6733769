"""What one request produced: the answer, the calls and results, and everything measured."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeagent.types import RouteDecision, ToolCall, ToolResult, Usage


@dataclass
class AgentResult:
    """Everything about one request; ``to_dict`` is what `edgeagent run --json` prints."""

    request_id: str
    answer: str
    calls: list[ToolCall] = field(default_factory=list)
    results: list[ToolResult] = field(default_factory=list)
    route: RouteDecision | None = None
    confidence: float | None = None
    latency_s: float = 0.0
    energy_j: float = 0.0
    energy_source: str = "estimate"
    energy_estimated: bool = True
    usage: Usage = field(default_factory=Usage)
    notices: list[str] = field(default_factory=list)
    model: str = ""
    steps: int = 0
    finish_reason: str = ""  # how the answer's decode ended: stop, length, timeout, ...
    wait_s: float = 0.0  # time spent waiting for the user's confirmations (not in latency_s)
    answer_by: str = "model"  # who wrote the answer: model | remote | runtime (results shown)
    # for the store and the app, not printed by ``to_dict``:
    conversation_id: str = ""
    status: str = "done"  # done | failed (an exception ended the request)
    error: str | None = None
    engine: str = ""  # the grammar engine of the proposals
    confidence_threshold: float | None = None  # the router's threshold for this request

    def to_dict(self) -> dict:
        by_call = {r.call_id: r for r in self.results}
        calls = []
        for call in self.calls:
            result = by_call.get(call.id)
            calls.append(
                {
                    "id": call.id,
                    "name": call.name,
                    "arguments": call.arguments,
                    "status": result.status if result else call.status,
                    "result": (result.output if result and result.ok else None),
                    "error": (result.error if result else call.error),
                    "confidence": call.confidence,
                    "confidence_parts": call.confidence_parts,
                    "route": call.route,
                    "repaired": call.repaired,
                }
            )
        return {
            "request_id": self.request_id,
            "answer": self.answer,
            "calls": calls,
            "route": self.route.route if self.route else "local",
            "route_reason": self.route.reason if self.route else "",
            "confidence": self.confidence,
            "latency_s": round(self.latency_s, 4),
            "ttft_s": round(self.usage.ttft_s, 4),
            "prompt_tokens": self.usage.prompt_tokens,
            "cached_prompt_tokens": self.usage.cached_prompt_tokens,
            "output_tokens": self.usage.output_tokens,
            "energy_j": round(self.energy_j, 4),
            "energy_source": self.energy_source,
            "energy_estimated": self.energy_estimated,
            "model": self.model,
            "steps": self.steps,
            "finish_reason": self.finish_reason,
            "wait_s": round(self.wait_s, 4),
            "answer_by": self.answer_by,
            "notices": self.notices,
        }
