"""Training datasets: the OpenAI chat format is checked line by line, scrubbed, deduplicated."""

from __future__ import annotations

import json

import pytest

from edgeagent.adapt.dataset import (
    Scrubber,
    check_record,
    cluster_of,
    curate,
    read_jsonl,
    write_jsonl,
)
from edgeagent.errors import DatasetError

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a file",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
        },
    }
]


def call_record(prompt="What's in notes.txt?", path="notes.txt", answer="It says hi."):
    return {
        "messages": [
            {"role": "user", "content": prompt},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "read_file", "arguments": json.dumps({"path": path})},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "hi"},
            {"role": "assistant", "content": answer},
        ],
        "tools": TOOLS,
    }


def test_a_well_formed_record_passes():
    record = call_record()
    assert check_record(record) is record


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.update(messages=[]), "non-empty list"),
        (lambda r: r["messages"][0].update(role="wizard"), "role must be one of"),
        (
            lambda r: r["messages"][1]["tool_calls"][0]["function"].update(name="rm_rf"),
            "unknown tool 'rm_rf'",
        ),
        (
            lambda r: r["messages"][1]["tool_calls"][0]["function"].update(arguments="{nope"),
            "arguments are not JSON",
        ),
        (
            lambda r: r["messages"][1]["tool_calls"][0]["function"].update(arguments="[1]"),
            "must be a JSON object",
        ),
        (lambda r: r.update(messages=[r["messages"][0]]), "no assistant turn"),
        (lambda r: r["messages"][3].update(content="   "), "needs content or tool_calls"),
        (lambda r: r.update(tools=[{"type": "function"}]), "tools[0]"),
    ],
)
def test_a_malformed_record_is_refused_with_the_reason(change, message):
    record = call_record()
    change(record)
    with pytest.raises(DatasetError, match="record: .*" + message.replace("[", r"\[")):
        check_record(record)


def test_read_jsonl_names_the_bad_line(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(call_record()) + "\n\n" + "{not json\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"data\.jsonl:3: not JSON"):
        read_jsonl(path)


def test_read_jsonl_refuses_a_missing_or_empty_file(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        read_jsonl(tmp_path / "none.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="no records"):
        read_jsonl(tmp_path / "empty.jsonl")


def test_write_then_read_round_trips(tmp_path):
    records = [call_record(), call_record(path="todo.md")]
    assert write_jsonl(records, tmp_path / "out" / "d.jsonl") == 2
    assert read_jsonl(tmp_path / "out" / "d.jsonl") == records
    assert not list((tmp_path / "out").glob("*.part"))


def test_scrubber_removes_secrets_emails_and_outside_paths(tmp_path):
    root = tmp_path / "work"
    root.mkdir()
    scrub = Scrubber([root], secrets=["hunter2-very-secret"])
    text = (
        f"mail ana@example.org, key sk-abcdefghijklmnopqrstuv, token=abcdef123456, "
        f"pw hunter2-very-secret, file {root}/notes/a.txt, other /etc/passwd and ~/.ssh/id_rsa"
    )
    clean = scrub.text(text)
    for gone in ("ana@example.org", "sk-abcdef", "abcdef123456", "hunter2", "/etc/passwd", ".ssh"):
        assert gone not in clean
    assert "[email]" in clean and "[redacted]" in clean and "[path]" in clean
    assert "file notes/a.txt" in clean  # inside the root: relative, no user name


def test_scrubber_reaches_call_arguments_and_tool_output(tmp_path):
    record = call_record(path="/home/ana/secret.txt", answer="Mail bob@corp.example now.")
    record["messages"][2]["content"] = "contact: eve@example.com"
    clean = Scrubber([tmp_path]).record(record)
    arguments = json.loads(clean["messages"][1]["tool_calls"][0]["function"]["arguments"])
    assert arguments == {"path": "[path]"}
    assert clean["messages"][2]["content"] == "contact: [email]"
    assert clean["messages"][3]["content"] == "Mail [email] now."
    assert record["messages"][3]["content"] == "Mail bob@corp.example now."  # a copy


def test_curate_deduplicates_and_labels_clusters():
    chat = {
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello!"}],
        "tools": TOOLS,
    }
    same_request_other_spacing = call_record(prompt="what's in   NOTES.txt?")
    kept, left_out = curate(
        [call_record(), same_request_other_spacing, call_record(path="x"), chat]
    )
    assert len(kept) == 3 and left_out["duplicate"] == 1
    assert [r["metadata"]["cluster"] for r in kept] == ["read_file", "read_file", "no_tool"]
    capped, left_out = curate([call_record(), call_record(path="x"), chat], max_per_cluster=1)
    assert [cluster_of(r) for r in capped] == ["read_file", "no_tool"]
    assert left_out["cluster full"] == 1
