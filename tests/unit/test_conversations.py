"""Past conversations in a real SQLite history, written by a real agent session on a scripted
model: list, full-text search, rename, delete, export, and resuming one."""

from __future__ import annotations

import json

import pytest

from edgeagent.agent.loop import make_agent
from edgeagent.config import load_settings
from edgeagent.errors import StoreError
from edgeagent.store.conversations import (
    delete_conversation,
    export_json,
    export_markdown,
    list_conversations,
    rename_conversation,
)
from edgeagent.testing import FakeModel, call
from edgeagent.tools.registry import tool_from_function


def where_parked(level: int) -> str:
    """Where the car is parked."""
    return f"The car is parked on level {level}."


@pytest.fixture
def history(tmp_path):
    """Two conversations: one about parking (with a tool call), one about milk."""
    root = tmp_path / "root"
    root.mkdir()
    settings = load_settings(home=tmp_path / "home", allowed_roots=(root,), tool_retrieval=False)
    model = FakeModel(
        [
            call("where_parked", level=3),
            "Level 3.",
            "Milk is in the fridge.",
            "Oat milk, mostly.",
        ]
    )
    agent = make_agent(settings, model=model, tools=[tool_from_function(where_parked)])
    agent.run("Where did I leave the car?")
    parking = agent.conversation_id
    agent.new_conversation()
    agent.run("Where is the milk?")
    agent.run("Which milk do I buy?")
    milk = agent.conversation_id
    yield agent, model, parking, milk
    agent.close()


def test_conversations_are_listed_newest_first_with_their_first_words(history):
    agent, _model, parking, milk = history
    listed = list_conversations(agent.store)
    assert [c.id for c in listed] == [milk, parking]
    assert listed[0].title == "Where is the milk?" and listed[0].requests == 2
    assert listed[1].requests == 1 and listed[0].last_at >= listed[1].last_at


def test_search_finds_a_conversation_by_any_of_its_messages(history):
    agent, _model, parking, milk = history
    assert [c.id for c in list_conversations(agent.store, query="fridge")] == [milk]
    # a tool result is a message too; "parked" is in the tool's output only
    assert [c.id for c in list_conversations(agent.store, query="parked")] == [parking]
    assert list_conversations(agent.store, query="zebra") == []
    assert len(list_conversations(agent.store, query="  ")) == 2


def test_rename_then_delete_touches_only_that_conversation(history):
    agent, _model, parking, milk = history
    rename_conversation(agent.store, parking, "  Car   park  ")
    assert list_conversations(agent.store, query="car park")[0].title == "Car park"
    before = {t: len(agent.store.query(f"select * from {t}")) for t in ("messages", "requests")}
    delete_conversation(agent.store, parking)
    assert [c.id for c in list_conversations(agent.store)] == [milk]
    left = agent.store.query("select conversation_id from requests")
    assert {r["conversation_id"] for r in left} == {milk} and len(left) == before["requests"] - 1
    assert agent.store.query("select * from tool_calls") == []  # its call went with it
    with pytest.raises(StoreError, match=parking):
        delete_conversation(agent.store, parking)


def test_exports_hold_the_requests_calls_answers_and_costs(history):
    agent, _model, parking, _milk = history
    markdown = export_markdown(agent.store, parking)
    assert markdown.startswith("# Where did I leave the car?")
    for part in (
        "**You:** Where did I leave the car?",
        "`where_parked(",
        ": ok",
        "Level 3.",
        " J (",
    ):
        assert part in markdown
    data = json.loads(export_json(agent.store, parking))
    assert data["conversation"]["id"] == parking
    assert [m["role"] for m in data["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert data["requests"][0]["calls"][0]["name"] == "where_parked"


def test_resuming_gives_the_model_its_history_back_and_keeps_it_from_the_remote(history):
    agent, model, parking, _milk = history
    model.queue("Still level 3.")
    turns = agent.resume(parking)
    assert [t.role for t in turns] == ["user", "assistant", "tool", "assistant"]
    assert [t.hidden for t in turns] == [False, True, True, True]
    result = agent.run("And which level was it?")
    assert "Where did I leave the car?" in model.requests[-1].prompt  # the old turns are back
    rows = agent.store.query(
        "select conversation_id from requests where id = ?", (result.request_id,)
    )
    assert rows == [{"conversation_id": parking}]
    with pytest.raises(StoreError, match="no conversation"):
        agent.resume("nope")
