"""The command line: lazy imports, one-line errors for bad input, JSON contracts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from edgeagent.cli import cli
from tests.conftest import TEST_MODELS_DIR


def invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_help_and_version_import_neither_llama_cpp_nor_textual():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from edgeagent.cli import cli\n"
        "for args in (['--help'], ['--version'], ['models', '--help']):\n"
        "    r = CliRunner().invoke(cli, args)\n"
        "    assert r.exit_code == 0, r.output\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('llama_cpp', 'textual')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and "edgeagent" in result.output


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no model file"),
        (b"", "empty"),
        (os.urandom(4096), "not a GGUF"),
        (b"hello, I am a text file\n" * 10, "not a GGUF"),
    ],
    ids=["missing", "zero-byte", "random-bytes", "text-renamed"],
)
def test_models_info_bad_files_give_one_line_errors(tmp_path, content, expected):
    path = tmp_path / "model.gguf"
    if content is not None:
        path.write_bytes(content)
    result = CliRunner().invoke(cli, ["models", "info", str(path)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.output.startswith("error: ")
    assert expected.lower() in result.output.lower()


def test_models_info_truncated_gguf(tmp_path, smollm_path):
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(smollm_path.read_bytes()[:3_000_000])
    result = CliRunner().invoke(cli, ["models", "info", str(cut), "--json"])
    assert result.exit_code == 1
    assert "truncated" in result.output.lower()


def test_unknown_catalog_id_suggests_close_match():
    result = CliRunner().invoke(cli, ["models", "path", "smollm2-135m"])
    assert result.exit_code == 1
    assert "smollm2-135m-instruct-q4_1" in result.output


def test_models_list_json_has_install_and_ram_facts():
    result = invoke("models", "list", "--json")
    rows = json.loads(result.output)
    assert len(rows) >= 8
    assert {"id", "installed", "fits_ram", "size_bytes"} <= set(rows[0])
    assert sum(1 for r in rows if r.get("default")) == 1


@pytest.mark.model
def test_models_info_json_facts(smollm_path):
    info = json.loads(invoke("models", "info", str(smollm_path), "--json").output)
    assert info["architecture"] == "llama"
    assert info["vocab_size"] == 49152
    assert info["quantization"] == "Q4_1"
    assert info["chat_template_family"] == "chatml"
    assert 100e6 < info["parameters"] < 200e6


def test_run_offline_without_model_says_how_to_get_one():
    result = CliRunner().invoke(cli, ["run", "hello", "--offline"])
    assert result.exit_code == 1
    assert "edgeagent models pull smollm2-135m-instruct-q4_1" in result.output
    assert "Traceback" not in result.output


@pytest.mark.model
def test_run_json_answers_with_the_default_model(smollm_path):
    env = {"EDGEAGENT_MODELS_DIR": str(TEST_MODELS_DIR), "EDGEAGENT_MAX_TOKENS": "24"}
    result = invoke("run", "Say hello.", "--offline", "--no-tools", "--json", env=env)
    data = json.loads(result.output)
    for key in ("answer", "model", "latency_s", "ttft_s", "tokens_per_s", "energy_j"):
        assert key in data
    assert data["answer"]
    assert data["model"] == smollm_path.name
    assert data["output_tokens"] <= 24
    assert data["energy_source"] in {"estimate", "rapl"}


def test_doctor_json_reports_checks():
    result = CliRunner().invoke(cli, ["doctor", "--json"])
    data = json.loads(result.output)
    names = {c["name"] for c in data["checks"]}
    assert {"llama-cpp-python", "llama.cpp backend", "memory", "energy", "database"} <= names
    assert all(c["fix"] for c in data["checks"] if c["status"] == "fail")


def test_grammar_prints_gbnf_for_a_schema(tmp_path):
    schema = tmp_path / "s.json"
    schema.write_text(
        json.dumps({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]})
    )
    result = invoke("grammar", "--schema", str(schema))
    assert result.exit_code == 0
    assert "root ::=" in result.output


def test_grammar_names_the_keyword_it_cannot_honour(tmp_path):
    schema = tmp_path / "s.json"
    schema.write_text(
        json.dumps({"type": "object", "properties": {"x": {"not": {"type": "string"}}}})
    )
    result = CliRunner().invoke(cli, ["grammar", "--schema", str(schema)])
    assert result.exit_code == 2
    assert "not" in result.output and "$.properties.x" in result.output


def test_grammar_reports_validator_enforced_keywords_on_stderr(tmp_path):
    schema = tmp_path / "s.json"
    schema.write_text(
        json.dumps(
            {
                "type": "object",
                "properties": {"x": {"type": "number", "multipleOf": 0.5}},
                "required": ["x"],
            }
        )
    )
    result = CliRunner().invoke(cli, ["grammar", "--schema", str(schema)])
    assert result.exit_code == 0
    assert "multipleOf" in result.stderr


def test_grammar_accepts_an_openai_tool_list(tmp_path):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "f",
                "description": "d",
                "parameters": {
                    "type": "object",
                    "properties": {"a": {"type": "string", "maxLength": 5}},
                },
            },
        }
    ]
    path = tmp_path / "tools.json"
    path.write_text(json.dumps(tools))
    result = invoke("grammar", "--schema", str(path))
    assert result.exit_code == 0, result.output
    # The grammar is GBNF: the tool name is a quoted literal inside a quoted string.
    assert '"{\\"name\\":\\"f\\",' in result.output
    assert "f-args ::=" in result.output


def test_tools_list_and_show():
    rows = json.loads(invoke("tools", "list", "--json").output)
    names = {r["name"] for r in rows}
    assert {"read_file", "write_file", "calculator", "http_get", "list_dir"} <= names
    risks = {r["name"]: r["risk"] for r in rows}
    assert risks["write_file"] == "write" and risks["http_get"] == "network"
    shown = invoke("tools", "show", "read_file").output
    assert "grammar:" in shown and "root ::=" in shown


def test_stats_and_logs_on_an_empty_history():
    data = json.loads(invoke("stats", "--json").output)
    assert "schema_validity_rate" in data and "latency_p95_s" in data
    assert json.loads(invoke("logs", "--json").output) == []


def test_corrupt_database_is_a_clear_error(isolated_home):
    isolated_home.mkdir(parents=True, exist_ok=True)
    db = isolated_home / "edgeagent.db"
    db.write_bytes(os.urandom(8192))
    before = db.read_bytes()
    result = CliRunner().invoke(cli, ["stats"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert db.read_bytes() == before


def test_eval_bfcl_unknown_category_is_a_clear_error():
    result = CliRunner().invoke(cli, ["eval", "bfcl", "--categories", "nonsense", "--limit", "1"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "nonsense" in result.output


def test_tools_list_cuts_descriptions_at_a_word():
    from edgeagent.cli import _words

    text = "Search text files for a phrase (case-insensitive); returns file:line: text"
    cut = _words(text)
    assert len(cut) <= 70 and cut.endswith("…") and text.startswith(cut[:-1])
    assert _words("short one") == "short one"


def test_no_progress_bar_for_a_model_already_installed():
    import io

    from edgeagent.runtime.download import ProgressBar

    stream = io.StringIO()
    bar = ProgressBar("m", file=stream, disable=False)
    bar.close()
    assert stream.getvalue() == ""
    bar = ProgressBar("m", file=stream, disable=False)
    bar(512, 1024)
    bar(1024, 1024)
    assert "1.00k" in stream.getvalue() or "1.0k" in stream.getvalue()


def test_base_models_get_a_warning():
    from edgeagent.runtime.session import base_model_warning

    assert base_model_warning("gemma-3-270m-q4_k_m.gguf")
    assert base_model_warning("SmolLM2-135M-Instruct.Q4_1.gguf") is None
    assert base_model_warning("/tmp/Qwen2.5-1.5B-Instruct-Q4_K_M.gguf") is None
    assert base_model_warning("/tmp/mystery-base-7b.gguf")
