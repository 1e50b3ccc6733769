"""Shared fixtures: a temporary EDGEAGENT_HOME and the two real tiny models, fetched once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TEST_MODELS_DIR = Path(
    os.environ.get("EDGEAGENT_TEST_MODELS", Path.home() / ".cache" / "edgeagent" / "test-models")
)
SMOLLM_ID = "smollm2-135m-instruct-q4_1"
GEMMA_ID = "gemma-3-270m-q4_k_m"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Every test gets its own EDGEAGENT_HOME; no EDGEAGENT_* variable leaks in from the shell."""
    for key in list(os.environ):
        if key.startswith("EDGEAGENT_") and key != "EDGEAGENT_TEST_MODELS":
            monkeypatch.delenv(key, raising=False)
    home = tmp_path / "edgeagent-home"
    monkeypatch.setenv("EDGEAGENT_HOME", str(home))
    return home


def _tiny_model(model_id: str) -> Path:
    """The real GGUF for ``model_id``, pulled through the product's own catalog on first use."""
    from edgeagent.config import load_settings
    from edgeagent.runtime.catalog import load_catalog
    from edgeagent.runtime.download import pull_model

    entry = load_catalog().get(model_id)
    settings = load_settings(models_dir=TEST_MODELS_DIR)
    return pull_model(entry, settings)


@pytest.fixture(scope="session")
def smollm_path() -> Path:
    return _tiny_model(SMOLLM_ID)


@pytest.fixture(scope="session")
def gemma_path() -> Path:
    return _tiny_model(GEMMA_ID)


@pytest.fixture(scope="session", params=[SMOLLM_ID, GEMMA_ID])
def tiny_model_path(request) -> Path:
    """Both tiny models in turn: their chat templates and vocabularies differ."""
    return _tiny_model(request.param)


@pytest.fixture(scope="session")
def smollm_model(smollm_path):
    """SmolLM2-135M loaded once for the session (n_ctx 2048), for agent-level tests."""
    from edgeagent.config import load_settings
    from edgeagent.runtime.local import LocalModel

    loaded = LocalModel(smollm_path, load_settings(n_ctx=2048))
    yield loaded
    loaded.close()
