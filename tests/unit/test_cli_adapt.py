"""`edgeagent adapt` on a real history file: export, import, mark, status; errors say why."""

from __future__ import annotations

import json

from click.testing import CliRunner

from edgeagent.cli import cli
from edgeagent.config import load_settings
from edgeagent.store import Store
from tests.unit.test_adapt_export import History


def populate(home, requests: int = 3) -> list[str]:
    settings = load_settings(home=home)
    with Store(settings.db_path) as store:
        history = History(store)
        ids = [
            history.request(f"read notes{i}.txt", path=f"notes{i}.txt", answer="It says MAPLE-42.")
            for i in range(requests)
        ]
        ids.append(history.request("hi there", path=None, answer="Hello!"))
    return ids


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_export_writes_the_dataset_and_says_what_was_left_out(isolated_home, tmp_path):
    populate(isolated_home)
    out = tmp_path / "data.jsonl"
    result = invoke("adapt", "export", "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["records"] == 3 and summary["clusters"] == {"read_file": 3}
    assert summary["left_out"] == {"answer without a tool, not confirmed": 1}
    lines = out.read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[0])
    assert {t["function"]["name"] for t in record["tools"]} >= {"read_file", "write_file"}


def test_mark_good_makes_a_text_answer_learnable(isolated_home, tmp_path):
    ids = populate(isolated_home, requests=1)
    assert invoke("adapt", "mark", ids[-1][:10], "good").exit_code == 0
    summary = json.loads(
        invoke("adapt", "export", "--out", str(tmp_path / "d.jsonl"), "--json").output
    )
    assert summary["clusters"] == {"read_file": 1, "no_tool": 1}
    summary = json.loads(
        invoke(
            "adapt", "export", "--only-confirmed", "--out", str(tmp_path / "c.jsonl"), "--json"
        ).output
    )
    assert summary["clusters"] == {"no_tool": 1}


def test_mark_an_unknown_request_fails_clearly(isolated_home):
    populate(isolated_home, requests=1)
    result = CliRunner().invoke(cli, ["adapt", "mark", "zzzz", "good"])
    assert result.exit_code != 0 and "0 requests match 'zzzz'" in result.output


def test_status_counts_useful_traces_since_the_last_adapter(isolated_home):
    populate(isolated_home)
    status = json.loads(invoke("adapt", "status", "--json").output)
    assert status["new_useful_traces"] == 3 and status["requests_since_last"] == 4
    assert status["adapters"] == 0 and status["active_adapter"] is None


def test_import_checks_scrubs_and_deduplicates(isolated_home, tmp_path):
    from tests.unit.test_adapt_dataset import call_record

    source = tmp_path / "theirs.jsonl"
    leaky = call_record(answer="Write to ana@example.org")
    source.write_text(
        "\n".join(json.dumps(r) for r in (call_record(), call_record(), leaky)) + "\n",
        encoding="utf-8",
    )
    out = tmp_path / "mine.jsonl"
    summary = json.loads(invoke("adapt", "import", str(source), "--out", str(out), "--json").output)
    assert summary["records"] == 2 and summary["left_out"] == {"duplicate": 1}
    assert "ana@example.org" not in out.read_text(encoding="utf-8")


def test_import_of_a_malformed_file_names_the_line(isolated_home, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["adapt", "import", str(bad)])
    assert result.exit_code == 1
    assert "error: bad.jsonl:1: no assistant turn to learn from" in result.output


def test_train_with_a_missing_base_or_data_says_what_to_do(isolated_home, tmp_path, smollm_path):
    runner = CliRunner()
    data = str(tmp_path / "x.jsonl")
    result = runner.invoke(cli, ["adapt", "train", "--base", "/nonexistent.gguf", "--data", data])
    assert result.exit_code == 1 and "error: no model file at /nonexistent.gguf" in result.output
    result = runner.invoke(cli, ["adapt", "train", "--base", str(smollm_path), "--data", data])
    assert result.exit_code == 1 and f"error: {data} does not exist" in result.output


def test_training_without_the_extra_names_what_to_install(monkeypatch):
    import sys

    import pytest

    from edgeagent.adapt.train import require_training_stack
    from edgeagent.errors import AdaptDependencyError

    monkeypatch.setitem(sys.modules, "peft", None)  # as if it were not installed
    with pytest.raises(AdaptDependencyError, match="training needs peft") as info:
        require_training_stack()
    assert "edgeagent[adapt]" in info.value.hint
