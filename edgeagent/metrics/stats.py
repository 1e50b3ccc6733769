"""The five production metrics, computed from the history database.

Definitions (all over requests created at or after ``since``, and the calls of those requests):

- A request is *finished* when its status is ``done``, ``failed`` or ``interrupted`` (its
  process was killed; marked at the next start). ``running`` ones are in progress and count
  only in ``counts``. Values a foreign writer left unreadable (text where a number belongs,
  inf, nan) are skipped, never fatal.
- A request is *successful* when its status is ``done``, its answer is not blank, and every
  call that was executed (status ``ok``, ``error`` or ``timeout``) ended ``ok``. Calls that
  never ran (invalid, declined, skipped, not executed) do not disqualify it.
- ``cost_per_successful_task``: what all finished requests spent divided by the number of
  successful ones (failures are part of the price): energy J, latency s, and remote tokens
  (remote prompt + output). None when nothing succeeded.
- ``schema_validity_rate``: proposed calls whose arguments passed the schema / proposed calls
  (every proposal counts, including each repair attempt).
- ``executable_call_rate``: proposed calls that passed schema and semantic validation and ran
  with status ``ok`` / proposed calls.
- ``latency_p50_s``, ``latency_p95_s``, ``latency_max_s``: over finished requests with a
  latency, by the nearest-rank method (the value at rank ceil(p/100 * n) of the sorted list,
  always an observed latency).
- ``energy_per_request_j``: mean energy over finished requests with an energy reading, with
  the sources seen and whether any reading was an estimate.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgeagent.store.db import Store

EXECUTED_STATUSES = frozenset({"ok", "error", "timeout"})
FINISHED_STATUSES = frozenset({"done", "failed", "interrupted"})
ROUTES = ("local", "remote", "local_fallback")
PERCENTILE_METHOD = "nearest-rank"


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile: the value at rank ceil(p/100 * n) of the sorted values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _number(value: Any) -> float | None:
    """A finite float from a database value, or None (text, blobs, inf and nan are skipped)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def compute_stats(store: Store, since: float | None = None) -> dict[str, Any]:
    """The five production metrics (see the module docstring for exact definitions).

    Returns a JSON-ready dict: ``since``, ``percentile_method``, ``counts`` (requests, done,
    failed, running, finished, successful, calls, schema_valid_calls, executable_calls,
    executed_calls, routes, calls_by_status), ``cost_per_successful_task`` (energy_j,
    latency_s, remote_tokens), ``schema_validity_rate``, ``executable_call_rate``,
    ``latency_p50_s``, ``latency_p95_s``, ``latency_max_s``, ``latency_requests``,
    ``energy_per_request_j``,
    ``energy_sources``, ``energy_estimated``, ``energy_requests``. Rates and costs are None
    when their denominator is zero.
    """
    where, params = ("WHERE r.created_at >= ?", (since,)) if since is not None else ("", ())
    requests = store.query(
        "SELECT r.id, r.status, r.answer, r.route, r.latency_s, r.energy_j, r.energy_source, "
        "r.energy_estimated, r.remote_prompt_tokens, r.remote_output_tokens "
        f"FROM requests r {where}",
        params,
    )
    calls = store.query(
        "SELECT c.request_id, c.schema_valid, c.semantic_valid, c.status "
        f"FROM tool_calls c JOIN requests r ON r.id = c.request_id {where}",
        params,
    )

    failed_execution = {c["request_id"] for c in calls if c["status"] in EXECUTED_STATUSES - {"ok"}}
    finished = [r for r in requests if r["status"] in FINISHED_STATUSES]
    successful = [
        r
        for r in finished
        if r["status"] == "done" and (r["answer"] or "").strip() and r["id"] not in failed_execution
    ]
    n_success = len(successful)

    latencies = [v for r in finished if (v := _number(r["latency_s"])) is not None]
    measured = [r for r in finished if _number(r["energy_j"]) is not None]
    energy_total = sum(_number(r["energy_j"]) or 0.0 for r in measured)
    remote_tokens = sum(
        (_number(r["remote_prompt_tokens"]) or 0) + (_number(r["remote_output_tokens"]) or 0)
        for r in finished
    )

    n_calls = len(calls)
    schema_valid = sum(1 for c in calls if c["schema_valid"])
    executable = sum(
        1 for c in calls if c["schema_valid"] and c["semantic_valid"] and c["status"] == "ok"
    )
    statuses = Counter(str(r["status"]) for r in requests)
    routes = {route: 0 for route in ROUTES}
    for r in finished:
        key = r["route"] if isinstance(r["route"], str) and r["route"] else "unknown"
        routes[key] = routes.get(key, 0) + 1

    return {
        "since": since,
        "percentile_method": PERCENTILE_METHOD,
        "counts": {
            "requests": len(requests),
            "done": statuses.get("done", 0),
            "failed": statuses.get("failed", 0),
            "running": statuses.get("running", 0),
            "interrupted": statuses.get("interrupted", 0),
            "finished": len(finished),
            "successful": n_success,
            "calls": n_calls,
            "schema_valid_calls": schema_valid,
            "executable_calls": executable,
            "executed_calls": sum(1 for c in calls if c["status"] in EXECUTED_STATUSES),
            "routes": routes,
            "calls_by_status": dict(sorted(Counter(str(c["status"]) for c in calls).items())),
        },
        "cost_per_successful_task": {
            "energy_j": _ratio(energy_total, n_success) if measured else None,
            "latency_s": _ratio(sum(latencies), n_success) if latencies else None,
            "remote_tokens": _ratio(remote_tokens, n_success),
        },
        "schema_validity_rate": _ratio(schema_valid, n_calls),
        "executable_call_rate": _ratio(executable, n_calls),
        "latency_p50_s": percentile(latencies, 50),
        "latency_p95_s": percentile(latencies, 95),
        "latency_max_s": max(latencies) if latencies else None,
        "latency_requests": len(latencies),
        "energy_per_request_j": _ratio(energy_total, len(measured)),
        "energy_sources": sorted(
            {r["energy_source"] for r in measured if isinstance(r["energy_source"], str)}
        ),
        "energy_estimated": any(bool(r["energy_estimated"]) for r in measured),
        "energy_requests": len(measured),
    }


def _num(value: float | None, unit: str, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f} {unit}".rstrip()


def _pct(rate: float | None, numerator: int, denominator: int) -> str:
    if rate is None:
        return "n/a (no calls yet)"
    return f"{rate * 100:.1f}% ({numerator}/{denominator})"


def format_stats(stats: dict[str, Any]) -> str:
    """The stats as aligned terminal lines."""
    counts = stats["counts"]
    cost = stats["cost_per_successful_task"]
    since = stats.get("since")
    window = (
        "since " + time.strftime("%Y-%m-%d %H:%M", time.localtime(since))
        if since is not None
        else "all history"
    )
    routes = ", ".join(f"{name} {n}" for name, n in counts["routes"].items())
    if stats["energy_requests"]:
        label = ", ".join(stats["energy_sources"]) or "unknown source"
        if stats["energy_estimated"]:
            label += "; estimated"
        measured = stats["energy_requests"]
        energy = f"{_num(stats['energy_per_request_j'], 'J')} ({label}, {measured} measured)"
    else:
        energy = "n/a (no energy readings)"
    if counts["successful"]:
        cps = (
            f"energy {_num(cost['energy_j'], 'J')} · latency {_num(cost['latency_s'], 's')} · "
            f"remote tokens {_num(cost['remote_tokens'], '', 1)}"
        )
    else:
        cps = "n/a (no successful request yet)"
    latency = (
        f"p50 {_num(stats['latency_p50_s'], 's')} · p95 {_num(stats['latency_p95_s'], 's')} · "
        f"max {_num(stats['latency_max_s'], 's')} ({stats['percentile_method']}, "
        f"{stats['latency_requests']} requests)"
        if stats["latency_p50_s"] is not None
        else "n/a (no finished request yet)"
    )
    interrupted = f", interrupted {counts['interrupted']}" if counts.get("interrupted") else ""
    rows = [
        ("window", window),
        (
            "requests",
            f"{counts['requests']} (done {counts['done']}, failed {counts['failed']}, "
            f"running {counts['running']}{interrupted}); "
            f"successful {counts['successful']}",
        ),
        ("routes", routes),
        ("tool calls", f"{counts['calls']} proposed, {counts['executed_calls']} executed"),
        ("cost per successful task", cps),
        (
            "schema validity rate",
            _pct(stats["schema_validity_rate"], counts["schema_valid_calls"], counts["calls"]),
        ),
        (
            "executable call rate",
            _pct(stats["executable_call_rate"], counts["executable_calls"], counts["calls"]),
        ),
        ("latency", latency),
        ("energy per request", energy),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)
