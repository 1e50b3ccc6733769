"""History -> training records on a real SQLite history: what is learned, what is left out, why."""

from __future__ import annotations

import json

import pytest

from edgeagent.adapt.dataset import check_record
from edgeagent.adapt.export import answer_problem, export_history, model_words
from edgeagent.agent.prompt import calls_text, tool_result_message
from edgeagent.store import Store
from edgeagent.types import ToolCall, ToolResult
from tests.unit.test_adapt_dataset import TOOLS

SECRET = "sk-live-0123456789abcdefXYZ"


class History:
    """Writes requests into a real store the way the agent loop does."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.conversation = store.start_conversation("", "tiny.gguf")

    def request(
        self,
        prompt: str,
        *,
        path: str | None = "notes.txt",
        output: str = "The wifi password is MAPLE-42.",
        answer: str = "The password is MAPLE-42.",
        status: str = "ok",
        valid: bool = True,
        route: str = "local",
        request_status: str = "done",
        answer_by: str = "model",
    ) -> str:
        rid = self.store.start_request(self.conversation, prompt, "tiny.gguf")
        self.store.add_message(self.conversation, "user", prompt)
        if path is not None:
            call = ToolCall("read_file", {"path": path})
            self.store.add_tool_call(rid, call, schema_valid=valid, semantic_valid=valid)
            if valid:
                self.store.add_message(
                    self.conversation, "assistant", calls_text([(call.name, call.arguments)])
                )
                result = ToolResult(call.id, call.name, status, output if status == "ok" else "")
                self.store.update_tool_call(call.id, result)
                body = output if status == "ok" else "declined by the user"
                message = tool_result_message(call.name, call.id, body, status == "ok")
                self.store.add_message(
                    self.conversation, "tool", message, name=call.name, call_id=call.id
                )
        self.store.add_message(self.conversation, "assistant", answer)
        self.store.finish_request(
            rid, status=request_status, answer=answer, route=route, answer_by=answer_by
        )
        return rid


@pytest.fixture
def store(tmp_path):
    # no secrets given to the store: the export's own scrubbing is what is tested
    with Store(tmp_path / "history.db") as opened:
        yield opened


def test_export_keeps_what_worked_and_says_why_the_rest_was_left_out(store, tmp_path):
    history = History(store)
    good = history.request("What's the wifi password? It's in notes.txt")
    history.request("delete notes.txt", status="declined", answer="Not done.")
    history.request("read it again", valid=False, answer="I could not make a valid call")
    history.request("read notes.txt", answer="It says MAPLE-42.")
    history.request("no, that's the wrong file", path=None, answer="Sorry!")
    chat = history.request("hi there", path=None, answer="Hello! How can I help?")
    remote = history.request("capital of Peru?", path=None, answer="Lima.", route="remote")
    bad = history.request("summarize notes.txt", answer="It is about wifi.")
    store.set_feedback(bad, "bad")
    history.request("read todo.md", path="todo.md", request_status="failed")

    result = export_history(store, TOOLS, roots=[tmp_path])

    kept = [r["metadata"]["request_id"] for r in result.records]
    assert kept == [good, remote]
    assert result.considered == 9
    assert result.skipped == {
        "a call did not run ok (declined)": 1,
        "a call did not validate": 1,
        "corrected by the user": 1,
        "answer without a tool, not confirmed": 2,  # "hi there" and the correction itself
        "marked bad": 1,
        "not done (failed)": 1,
    }
    first = result.records[0]
    check_record(first)
    assert [m["role"] for m in first["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert first["messages"][2]["content"] == "The wifi password is MAPLE-42."  # unwrapped data
    assert first["metadata"]["cluster"] == "read_file"
    store.set_feedback(chat, "good")
    again = export_history(store, TOOLS, roots=[tmp_path])
    assert chat in [r["metadata"]["request_id"] for r in again.records]
    confirmed = export_history(store, TOOLS, roots=[tmp_path], only_confirmed=True)
    assert [r["metadata"]["request_id"] for r in confirmed.records] == [chat]


def test_export_scrubs_secrets_emails_and_paths_outside_the_roots(store, tmp_path):
    history = History(store)
    history.request(
        f"read {tmp_path}/notes.txt and mail it to ana@example.org",
        path=f"{tmp_path}/notes.txt",
        output=f"key={SECRET} owner ana@example.org see /etc/shadow",
        answer="It holds a key.",
    )
    stored = json.dumps(store.query("SELECT content FROM messages"))
    assert SECRET in stored and "ana@example.org" in stored  # the raw history holds them
    result = export_history(store, TOOLS, roots=[tmp_path], secrets=[SECRET])
    text = json.dumps(result.records)
    assert SECRET not in text and "ana@example.org" not in text and "/etc/shadow" not in text
    assert str(tmp_path) not in text  # the user's folder became relative
    arguments = result.records[0]["messages"][1]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(arguments) == {"path": "notes.txt"}


def test_export_deduplicates_repeated_requests(store, tmp_path):
    history = History(store)
    for prompt in ("What's in notes.txt?", "what's in  notes.txt?", "What's in notes.txt?"):
        history.request(prompt, answer="It says MAPLE-42.")
    result = export_history(store, TOOLS, roots=[tmp_path])
    assert len(result.records) == 1 and result.skipped["duplicate"] == 2


def test_an_ungrounded_answer_is_not_learned_but_its_call_is(store, tmp_path):
    history = History(store)
    history.request("How much RAM?", answer="You have 14356 MB of RAM.", output="ram: 24106 MB")
    result = export_history(store, TOOLS, roots=[tmp_path])
    (record,) = result.records
    assert [m["role"] for m in record["messages"]] == ["user", "assistant"]
    assert record["metadata"]["answer_dropped"].startswith("numbers in no result: 14356")
    assert result.skipped["answer not learned: numbers in no result"] == 1


def test_an_answer_the_runtime_wrote_is_not_learned(store, tmp_path):
    history = History(store)
    history.request("what's in notes.txt", answer="read_file returned:\nwifi", answer_by="runtime")
    rid = history.request("hello", path=None, answer="I could not finish.", answer_by="runtime")
    store.set_feedback(rid, "good")  # even confirmed: the words were not the model's
    result = export_history(store, TOOLS, roots=[tmp_path])
    (record,) = result.records
    assert [m["role"] for m in record["messages"]] == ["user", "assistant"]
    assert record["messages"][1]["tool_calls"][0]["function"]["name"] == "read_file"
    assert result.skipped["answer written by the runtime"] == 1


def test_export_of_a_request_limit_and_since(store, tmp_path):
    history = History(store)
    first = history.request("read notes.txt", answer="It says MAPLE-42.")
    second = history.request("read todo.md", path="todo.md", answer="It says MAPLE-42.")
    only = export_history(store, TOOLS, roots=[tmp_path], request_ids=[second])
    assert [r["metadata"]["request_id"] for r in only.records] == [second]
    created = store.query("SELECT created_at FROM requests WHERE id = ?", (first,))[0]
    later = export_history(store, TOOLS, roots=[tmp_path], since=created["created_at"])
    assert [r["metadata"]["request_id"] for r in later.records] == [second]


def test_model_words_drops_what_the_runtime_appended():
    shown = (
        "The password is on the first line.\n\nFrom notes.txt:\n> wifi: MAPLE-42\n\n"
        "Not done: write_file: declined by the user"
    )
    assert model_words(shown) == "The password is on the first line."


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ("It is 84.", None),
        ('{"name": "calculator", "arguments": {}}', "call-shaped JSON"),
        ("```python\nprint(1)", "unclosed code fence"),
        ("About 99 files.", "numbers in no result: 99"),
    ],
)
def test_answer_problem(answer, problem):
    found = answer_problem(answer, ["12 times 7", "84"])
    assert (found is None) if problem is None else problem in found


def test_a_request_without_turns_does_not_shift_the_others(store, tmp_path):
    history = History(store)
    first = history.request("read notes.txt", answer="It says MAPLE-42.")
    broken = store.start_request(history.conversation, "read todo.md", "tiny.gguf")
    store.finish_request(broken, status="failed", error="crashed before its first turn")
    last = history.request("what's in notes.txt again", answer="Still MAPLE-42.")
    result = export_history(store, TOOLS, roots=[tmp_path])
    assert [r["metadata"]["request_id"] for r in result.records] == [first, last]
    assert result.records[1]["messages"][0]["content"] == "what's in notes.txt again"
