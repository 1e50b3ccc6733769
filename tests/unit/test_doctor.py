"""The doctor report: every check present, secrets never shown, broken storage flagged with a fix."""

from __future__ import annotations

import json
import os
import sqlite3
import sys

import pytest

from edgeagent import doctor
from edgeagent.config import load_settings
from edgeagent.doctor import (
    Check,
    check_database,
    check_energy,
    check_installed_models,
    check_llama_backend,
    check_models,
    check_network,
    collect_report,
    gpu_backends,
    parse_system_info,
    redact_url,
    report_to_dict,
    worst_status,
)

EXPECTED = {
    "python",
    "llama-cpp-python",
    "llama.cpp backend",
    "llguidance",
    "cpu",
    "memory",
    "energy",
    "model folder",
    "models",
    "database",
    "allowed roots",
    "network",
}
SECRET = "sk-test-S3CRET-0123456789"


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def test_report_has_every_check_and_a_fix_for_each_problem(tmp_path):
    checks = collect_report(load_settings())
    assert set(by_name(checks)) >= EXPECTED
    for check in checks:
        assert check.status in ("ok", "warn", "fail"), check
        assert check.detail, check
        if check.status != "ok":
            assert check.fix, check
    data = json.loads(json.dumps(report_to_dict(checks)))
    assert data["status"] == worst_status(checks)
    assert {c["name"] for c in data["checks"]} == {c.name for c in checks}
    # This venv has a working llama.cpp and llguidance.
    assert by_name(checks)["llama-cpp-python"].status == "ok"
    assert "GPU offload" in by_name(checks)["llama.cpp backend"].detail
    assert by_name(checks)["llguidance"].status == "ok"


def test_api_key_never_appears(tmp_path):
    settings = load_settings(
        allow_network=True,
        remote_url=f"http://user:{SECRET}@api.example.com/v1?api_key={SECRET}",
        remote_api_key=SECRET,
    )
    checks = collect_report(settings)
    dumped = json.dumps(report_to_dict(checks))
    assert SECRET not in dumped
    assert SECRET not in repr(checks)
    network = by_name(checks)["network"]
    assert "API key set" in network.detail
    assert "api.example.com" in network.detail
    assert network.status == "warn"  # a key over plain http to a remote host
    assert "https" in network.fix


def test_secret_slipping_into_a_check_is_scrubbed(monkeypatch):
    leaky = Check("database", "fail", f"oops {SECRET}", f"fix {SECRET}")
    monkeypatch.setattr(doctor, "check_database", lambda settings: leaky)
    checks = collect_report(load_settings(remote_api_key=SECRET))
    assert SECRET not in json.dumps(report_to_dict(checks))
    assert by_name(checks)["database"].detail == "oops ***"


def test_redact_url():
    assert (
        redact_url("https://u:p@host.example:8443/v1?k=v#f")
        == "https://host.example:8443/v1?<redacted>"
    )
    assert redact_url("http://localhost:8080/v1") == "http://localhost:8080/v1"


def test_network_policy_without_endpoint():
    assert check_network(load_settings()).status == "ok"
    assert "API key not set" in check_network(load_settings()).detail
    allowed = check_network(load_settings(allow_network=True))
    assert allowed.status == "warn"
    assert "remote_url" in allowed.fix
    bad = check_network(load_settings(remote_url="ftp://example.com"))
    assert bad.status == "fail" and bad.fix


def test_corrupt_database_is_a_failure_with_a_fix(tmp_path):
    db = tmp_path / "history.db"
    db.write_bytes(os.urandom(8192))
    check = check_database(load_settings(db_path=db))
    assert check.status == "fail"
    assert str(db) in check.detail
    assert f"mv {db} {db}.corrupt" in check.fix
    report = by_name(collect_report(load_settings(db_path=db)))
    assert report["database"].status == "fail"


def test_damaged_pages_fail_quick_check(tmp_path):
    db = tmp_path / "history.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    con.execute("CREATE INDEX t_body ON t(body)")
    con.executemany("INSERT INTO t (body) VALUES (?)", [(f"row {i} " * 20,) for i in range(2000)])
    con.commit()
    con.close()
    raw = bytearray(db.read_bytes())
    page = 4096
    raw[3 * page : 6 * page] = os.urandom(3 * page)  # smash pages past the header
    db.write_bytes(bytes(raw))
    check = check_database(load_settings(db_path=db))
    assert check.status == "fail"
    assert "mv" in check.fix


def test_healthy_and_missing_database(tmp_path):
    from edgeagent.store import Store

    db = tmp_path / "h.db"
    assert check_database(load_settings(db_path=db)).status == "ok"
    Store(db).close()
    check = check_database(load_settings(db_path=db))
    assert check.status == "ok" and "quick_check ok" in check.detail


def _newer_schema(db):
    from edgeagent.store import Store

    Store(db).close()
    con = sqlite3.connect(db)
    con.execute("INSERT INTO _migrations (name, applied_at) VALUES ('m999_future', 0)")
    con.commit()
    con.close()


def _foreign(db):
    sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.close()


def _device(db):
    return os.devnull


@pytest.mark.parametrize("make", [_foreign, _newer_schema, _device], ids=lambda f: f.__name__)
def test_doctor_fails_every_database_that_run_refuses(tmp_path, make):
    """Attack: doctor said [ok] for a foreign, newer-schema or special-file database."""
    from edgeagent.errors import StoreError
    from edgeagent.store import Store

    db = tmp_path / "h.db"
    db = make(db) or db
    with pytest.raises(StoreError) as refused:
        Store(db)
    check = check_database(load_settings(db_path=db))
    assert check.status == "fail"
    assert check.detail == refused.value.message
    assert check.fix == refused.value.hint


def test_model_dir_that_is_a_file_is_flagged(tmp_path):
    not_a_dir = tmp_path / "models"
    not_a_dir.write_text("oops")
    checks = by_name(check_models(load_settings(models_dir=not_a_dir)))
    assert checks["model folder"].status == "fail"
    assert "not a folder" in checks["model folder"].detail
    assert "EDGEAGENT_MODELS_DIR" in checks["model folder"].fix


def test_model_dir_that_cannot_be_created_is_flagged(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    check = by_name(check_models(load_settings(models_dir=blocker / "models")))["model folder"]
    assert check.status == "fail"
    assert "cannot be created" in check.detail
    assert "mkdir -p" in check.fix


def test_unwritable_model_dir_message(tmp_path, monkeypatch):
    """Root can write anywhere, so the probe's answer is injected; the message path is the same."""
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setattr(doctor, "_writable", lambda path: path != models)
    check = by_name(collect_report(load_settings(models_dir=models)))["model folder"]
    assert check.status == "fail"
    assert "not writable" in check.detail
    assert f"chmod u+w {models}" in check.fix


def _mode_bits_bind(folder) -> bool:
    """True if this process cannot create a file in ``folder`` (expected mode 500)."""
    probe = folder / "probe"
    try:
        probe.touch(exist_ok=False)
    except PermissionError:
        return True
    probe.unlink()
    return False


def test_unwritable_model_dir_by_mode(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    models.chmod(0o500)
    try:
        if not _mode_bits_bind(models):
            # Root (CAP_DAC_OVERRIDE) and Windows (no POSIX bits on folders) write here anyway.
            pytest.skip("this process can create files in a mode-500 folder")
        check = by_name(check_models(load_settings(models_dir=models)))["model folder"]
    finally:
        models.chmod(0o700)
    assert check.status == "fail"
    assert "not writable" in check.detail


def test_writable_probe_really_writes(tmp_path):
    assert doctor._writable(tmp_path) is True
    assert doctor._writable(tmp_path / "missing") is False


def test_default_model_as_missing_path(tmp_path):
    check = check_installed_models(load_settings(model=str(tmp_path / "nope.gguf")))
    assert check.status == "fail"
    assert "does not exist" in check.detail and check.fix


def test_default_model_installed_or_not(tmp_path):
    from edgeagent.runtime.catalog import load_catalog, model_file_path

    settings = load_settings(models_dir=tmp_path / "models")
    missing = check_installed_models(settings)
    assert missing.status == "warn"
    assert f"edgeagent models pull {settings.model}" in missing.fix
    entry = load_catalog().get(settings.model)
    path = model_file_path(entry, settings)
    path.parent.mkdir(parents=True)
    with path.open("wb") as f:
        f.truncate(entry.size_bytes)  # sparse file of the exact size: is_installed checks no hash
    present = check_installed_models(settings)
    assert present.status == "ok", present
    assert settings.model in present.detail.split("installed: ")[1]
    unknown = check_installed_models(load_settings(model="no-such-model"))
    assert unknown.status == "fail" and "models list" in unknown.fix


def test_missing_llama_cpp_is_a_failure_with_install_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import now raises ImportError
    monkeypatch.setitem(sys.modules, "llguidance", None)
    checks = by_name(collect_report(load_settings()))
    assert checks["llama-cpp-python"].status == "fail"
    assert "pip install llama-cpp-python" in checks["llama-cpp-python"].fix
    assert "CMAKE_ARGS" in checks["llama-cpp-python"].fix
    assert checks["llguidance"].status == "fail"
    assert checks["llguidance"].fix == "pip install llguidance"


def test_a_crashing_check_becomes_a_failure(monkeypatch):
    def boom():
        raise RuntimeError("sensor on fire")

    monkeypatch.setattr(doctor, "check_memory", boom)
    checks = by_name(collect_report(load_settings()))
    assert checks["memory"].status == "fail"
    assert "sensor on fire" in checks["memory"].detail
    assert checks["memory"].fix


CPU_INFO = (
    "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | LLAMAFILE = 1 | OPENMP = 1 | "
)
METAL_INFO = "Metal : EMBED_LIBRARY = 1 | CPU : NEON = 1 | ARM_FMA = 1 | FP16_VA = 1 | DOTPROD = 1 | ACCELERATE = 1 | "
CUDA_INFO = "CUDA : ARCHS = 500,610,700,750,800 | USE_GRAPHS = 1 | PEER_MAX_BATCH_SIZE = 128 | CPU : SSE3 = 1 | AVX2 = 1 | "
LEGACY_INFO = "AVX = 1 | AVX2 = 1 | AVX512 = 0 | METAL = 0 | CUDA = 1 | BLAS = 1 | SSE3 = 1 | "


def test_parse_system_info_formats():
    cpu = parse_system_info(CPU_INFO)
    assert cpu == {
        "CPU": {
            "SSE3": "1",
            "AVX": "1",
            "AVX2": "1",
            "F16C": "1",
            "FMA": "1",
            "LLAMAFILE": "1",
            "OPENMP": "1",
        }
    }
    assert gpu_backends(cpu) == []
    metal = parse_system_info(METAL_INFO)
    assert metal["Metal"] == {"EMBED_LIBRARY": "1"} and metal["CPU"]["NEON"] == "1"
    assert gpu_backends(metal) == ["Metal"]
    cuda = parse_system_info(CUDA_INFO)
    assert cuda["CUDA"]["ARCHS"] == "500,610,700,750,800"
    assert gpu_backends(cuda) == ["CUDA"]
    assert gpu_backends(parse_system_info("Metal : CPU : NEON = 1 | ")) == ["Metal"]
    assert gpu_backends(parse_system_info(LEGACY_INFO)) == ["CUDA"]


def test_backend_check_names_backend_and_missing_acceleration():
    kw = {"has_nvidia": False, "cpu_flags": set()}
    plain = check_llama_backend(CPU_INFO, False, system="Linux", machine="x86_64", **kw)
    assert plain.status == "ok"
    assert "backend CPU; GPU offload no" in plain.detail and "AVX2" in plain.detail
    metal = check_llama_backend(METAL_INFO, True, system="Darwin", machine="arm64", **kw)
    assert metal.status == "ok" and "backend Metal + CPU; GPU offload yes" in metal.detail
    no_metal = check_llama_backend(CPU_INFO, False, system="Darwin", machine="arm64", **kw)
    assert no_metal.status == "warn" and "-DGGML_METAL=on" in no_metal.fix
    no_cuda = check_llama_backend(
        CPU_INFO, False, system="Linux", machine="x86_64", has_nvidia=True, cpu_flags=set()
    )
    assert no_cuda.status == "warn" and "-DGGML_CUDA=on" in no_cuda.fix
    cuda = check_llama_backend(
        CUDA_INFO, True, system="Linux", machine="x86_64", has_nvidia=True, cpu_flags=set()
    )
    assert cuda.status == "ok" and "CUDA + CPU" in cuda.detail
    slow = check_llama_backend(
        "CPU : SSE3 = 1 | AVX = 1 | ",
        False,
        system="Linux",
        machine="x86_64",
        has_nvidia=False,
        cpu_flags={"avx", "avx2"},
    )
    assert slow.status == "warn" and "-DGGML_NATIVE=ON" in slow.fix


def test_energy_check_reports_source_and_fix(tmp_path):
    settings = load_settings()
    missing = check_energy(settings, powercap_root=tmp_path / "none", system="Linux")
    assert "estimated" in missing.detail and "rapl" in missing.detail
    assert missing.status in ("ok", "warn")
    zone = tmp_path / "powercap" / "intel-rapl:0"
    zone.mkdir(parents=True)
    (zone / "name").write_text("package-0\n")
    (zone / "energy_uj").write_text("123\n")

    def deny(path):
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied")
        return path.read_text()

    denied = check_energy(settings, powercap_root=tmp_path / "powercap", read=deny, system="Linux")
    assert denied.status == "warn"
    assert "chmod o+r" in denied.fix
    readable = check_energy(settings, powercap_root=tmp_path / "powercap", system="Linux")
    assert readable.status == "ok" and readable.detail.startswith("measured by rapl")


def test_wide_allowed_roots_are_a_warning(tmp_path):
    from edgeagent.doctor import check_roots

    assert check_roots(load_settings(allowed_roots=(tmp_path,))).status == "ok"
    wide = check_roots(load_settings(allowed_roots=("/",)))
    assert wide.status == "warn" and wide.fix
