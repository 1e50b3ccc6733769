"""Claims no other test would catch breaking, on the real tiny model: the key never stored."""

from __future__ import annotations

import pytest

from edgeagent.agent.loop import Agent
from edgeagent.config import load_settings
from edgeagent.secrets import secret_variants

pytestmark = pytest.mark.model

KEY = 'sk-claims-"7Qx\\w-0042-key'  # a quote and a backslash: JSON-escaped if stored unscrubbed


def test_agent_history_never_stores_the_api_key_the_user_typed(smollm_model, tmp_path):
    """The agent's own history store scrubs the key from the prompt, messages and answer."""
    settings = load_settings(
        home=tmp_path / "home",
        allowed_roots=(tmp_path,),
        remote_api_key=KEY,
        offline=True,
        max_tokens=16,
        max_steps=1,
    )
    agent = Agent(settings, model=smollm_model, tools=[])
    try:
        agent.run(f"My API key is {KEY}. Say hi.")
    finally:
        agent.close()
    files = sorted(settings.db_path.parent.glob(settings.db_path.name + "*"))
    assert files, "the request was not recorded"
    blob = b"".join(path.read_bytes() for path in files)
    assert b"Say hi." in blob  # the prompt really is stored, with the key taken out
    assert [form for form in secret_variants(KEY) if form.encode() in blob] == []
