"""Production metrics on a hand-built history, with exact expected numbers."""

from __future__ import annotations

import json

import pytest

from edgeagent.metrics.stats import compute_stats, format_stats, percentile
from edgeagent.store import Store
from edgeagent.types import ToolCall, ToolResult

# Requests r1-r5 finish with these requests columns (None: not passed); r6 is still running.
FINISH_COLUMNS = (
    "answer",
    "error",
    "route",
    "latency_s",
    "energy_j",
    "energy_source",
    "energy_estimated",
    "remote_prompt_tokens",
    "remote_output_tokens",
)
FINISHED = {
    "r1": ("a", None, "local", 1.0, 10.0, "rapl", None, None, None),
    "r2": ("b", None, "remote", 3.0, 20.0, "estimate", True, 100, 50),
    "r3": ("c", None, "local", 2.0, 30.0, "estimate", None, None, None),
    "r4": (None, "boom", "local_fallback", 5.0, 40.0, "estimate", None, 10, None),
    "r5": ("   ", None, "local", 4.0, None, None, None, None, None),  # blank answer
}
# Each request's tool calls, in order: (status, schema_valid, semantic_valid).
CALLS = {
    "r1": [("ok", True, True)],
    "r2": [("invalid", False, False), ("ok", True, True)],  # never ran, then the repaired call
    "r3": [("error", True, True)],  # executed and failed: not a success
    "r4": [("invalid", True, False)],
}


def _call(store, request_id, status, schema_valid, semantic_valid):
    call = ToolCall("read_file", {"path": "a"}, status=status)
    result = None
    if status in ("ok", "error", "timeout"):
        result = ToolResult(call.id, "read_file", status, output="x")
    store.add_tool_call(
        request_id, call, schema_valid=schema_valid, semantic_valid=semantic_valid, result=result
    )


@pytest.fixture
def history(tmp_path):
    """Six requests; R1 and R2 succeed, R3 has a failed call, R4 failed, R5 gave no answer."""
    store = Store(tmp_path / "h.db")
    conv = store.start_conversation()
    ids = {}
    for key, values in FINISHED.items():
        ids[key] = r = store.start_request(conv, "p" + key[1:], "m")
        for call in CALLS.get(key, []):
            _call(store, r, *call)
        columns = zip(FINISH_COLUMNS, values, strict=True)
        store.finish_request(r, **{name: value for name, value in columns if value is not None})
    ids["r6"] = store.start_request(conv, "p6", "m")  # still running (or crashed)
    yield store, ids
    store.close()


def test_stats_on_a_hand_built_history(history):
    store, _ = history
    stats = compute_stats(store)
    assert stats["counts"] == {
        "requests": 6,
        "done": 4,
        "failed": 1,
        "running": 1,
        "interrupted": 0,
        "finished": 5,
        "successful": 2,
        "calls": 5,
        "schema_valid_calls": 4,
        "executable_calls": 2,
        "executed_calls": 3,
        "routes": {"local": 3, "remote": 1, "local_fallback": 1},
        "calls_by_status": {"error": 1, "invalid": 2, "ok": 2},
    }
    # all finished requests' spend / 2 successes
    assert stats["cost_per_successful_task"] == {
        "energy_j": 50.0,  # (10 + 20 + 30 + 40) / 2
        "latency_s": 7.5,  # (1 + 3 + 2 + 5 + 4) / 2
        "remote_tokens": 80.0,  # (150 + 10) / 2
    }
    assert stats["schema_validity_rate"] == 0.8
    assert stats["executable_call_rate"] == 0.4
    assert stats["latency_p50_s"] == 3.0
    assert stats["latency_p95_s"] == 5.0
    assert stats["latency_max_s"] == 5.0
    assert stats["latency_requests"] == 5
    assert stats["energy_per_request_j"] == 25.0  # 100 J over 4 measured requests
    assert stats["energy_sources"] == ["estimate", "rapl"]
    assert stats["energy_estimated"] is True
    assert stats["energy_requests"] == 4
    assert stats["percentile_method"] == "nearest-rank"
    json.dumps(stats)  # JSON-ready for `edgeagent stats --json`


def test_stats_since_filters_requests_and_their_calls(history):
    store, ids = history
    for key in ("r1", "r2", "r3"):
        store.db.execute("UPDATE requests SET created_at = 1000 WHERE id = ?", (ids[key],))
    stats = compute_stats(store, since=1500.0)
    assert stats["counts"]["requests"] == 3
    assert stats["counts"]["successful"] == 0
    assert stats["counts"]["calls"] == 1
    assert stats["cost_per_successful_task"] == {
        "energy_j": None,
        "latency_s": None,
        "remote_tokens": None,
    }
    assert stats["schema_validity_rate"] == 1.0
    assert stats["executable_call_rate"] == 0.0
    assert stats["latency_p50_s"] == 4.0 and stats["latency_p95_s"] == 5.0
    assert stats["energy_per_request_j"] == 40.0
    assert stats["energy_estimated"] is False
    old = compute_stats(store, since=0.0)
    assert old["counts"]["requests"] == 6


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(20, 0, -1)]
    assert percentile(values, 50) == 10.0  # linear interpolation would give 10.5
    assert percentile(values, 95) == 19.0  # linear interpolation would give 19.05
    assert percentile(values, 100) == 20.0
    assert percentile(values, 0) == 1.0
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) is None


def test_stats_on_an_empty_history(tmp_path):
    with Store(tmp_path / "h.db") as store:
        stats = compute_stats(store)
    assert stats["counts"]["requests"] == 0
    assert stats["schema_validity_rate"] is None
    assert stats["executable_call_rate"] is None
    assert stats["latency_p50_s"] is None and stats["latency_max_s"] is None
    assert stats["energy_per_request_j"] is None and stats["energy_sources"] == []
    text = format_stats(stats)
    assert "no successful request yet" in text and "no calls yet" in text


def test_format_stats(history):
    store, _ = history
    text = format_stats(compute_stats(store))
    lines = text.splitlines()
    assert lines[0].split() == ["window", "all", "history"]
    assert "6 (done 4, failed 1, running 1); successful 2" in text
    assert "local 3, remote 1, local_fallback 1" in text
    assert "energy 50.00 J · latency 7.50 s · remote tokens 80.0" in text
    assert "80.0% (4/5)" in text
    assert "40.0% (2/5)" in text
    assert "p50 3.00 s · p95 5.00 s · max 5.00 s (nearest-rank, 5 requests)" in text
    assert "25.00 J (estimate, rapl; estimated, 4 measured)" in text
