"""`edgeagent run --offline` with the real tiny model opens no connection, even with a remote set."""

from __future__ import annotations

import json
import socket

import pytest
from click.testing import CliRunner

from edgeagent.cli import cli

pytestmark = [pytest.mark.model, pytest.mark.slow]

PROMPT = "What time is it?"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def socket_spy(monkeypatch):
    """Record and refuse every connection and name lookup (AF_UNIX sockets stay local)."""
    attempts: list[tuple[str, object]] = []
    real_connect = socket.socket.connect

    def connect(self, address):
        if self.family == socket.AF_UNIX:
            return real_connect(self, address)
        attempts.append(("connect", address))
        raise ConnectionRefusedError("socket spy: no connection allowed in this test")

    def create_connection(address, *args, **kwargs):
        attempts.append(("create_connection", address))
        raise ConnectionRefusedError("socket spy: no connection allowed in this test")

    def getaddrinfo(host, port, *args, **kwargs):
        attempts.append(("getaddrinfo", (host, port)))
        raise socket.gaierror(socket.EAI_NONAME, "socket spy: no name lookup allowed")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return attempts


@pytest.fixture
def remote_configured(monkeypatch) -> int:
    """A remote URL on a closed local port, network allowed, and every scored result escalated."""
    port = _free_port()
    monkeypatch.setenv("EDGEAGENT_REMOTE_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("EDGEAGENT_ALLOW_NETWORK", "true")
    monkeypatch.setenv("EDGEAGENT_CONFIDENCE_THRESHOLD", "1.0")
    return port


def _run(network_flag: str, model_path) -> dict:
    args = [
        "run",
        network_flag,
        "--model",
        str(model_path),
        "--json",
        "--max-tokens",
        "24",
        PROMPT,
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


def test_offline_run_opens_no_socket(smollm_path, remote_configured, socket_spy):
    data = _run("--offline", smollm_path)
    assert socket_spy == []
    assert data["route"] == "local"
    # Only --offline kept it local: the result was scored below the threshold (1.0).
    assert data["route_reason"].startswith("network off (confidence ")
    assert "< threshold 1.00" in data["route_reason"]
    assert isinstance(data["answer"], str)


def test_spy_sees_the_escalation_when_online(smollm_path, remote_configured, socket_spy):
    """The same run with --online: the spy records the attempt, so the offline test can fail."""
    data = _run("--online", smollm_path)
    assert data["route"] == "local_fallback", data["route_reason"]
    hosts = {target[0] for _, target in socket_spy if isinstance(target, tuple)}
    assert "127.0.0.1" in hosts, socket_spy
    assert any(remote_configured in target for _, target in socket_spy), socket_spy
