"""Energy readers on fixture powercap trees, a fake macmon, and the real CPU-time estimate."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import psutil
import pytest

from edgeagent.config import load_settings
from edgeagent.metrics.energy import (
    CpuTimeMeter,
    EnergyReading,
    MacmonMeter,
    RaplMeter,
    _integrate,
    energy_sources_status,
    joules_per_token,
    macos_status,
    select_energy_meter,
)

MAX_RANGE = 262_143_328_850


def make_zone(devices: Path, root: Path, zone: str, name: str, energy: int, real: str = "") -> Path:
    """A powercap zone directory under ``devices`` with a symlink in ``root``, like sysfs."""
    path = devices / (real or zone)
    path.mkdir(parents=True, exist_ok=True)
    (path / "name").write_text(name + "\n")
    (path / "energy_uj").write_text(f"{energy}\n")
    (path / "max_energy_range_uj").write_text(f"{MAX_RANGE}\n")
    (root / zone).symlink_to(path)
    return path


@pytest.fixture
def powercap(tmp_path) -> dict[str, Path]:
    """Two packages, their subzones, a psys zone, an MMIO twin and a duplicate link."""
    root = tmp_path / "powercap"
    devices = tmp_path / "devices" / "intel-rapl"
    root.mkdir()
    pkg0 = make_zone(devices, root, "intel-rapl:0", "package-0", 1_000_000)
    pkg1 = make_zone(devices, root, "intel-rapl:1", "package-1", 5_000_000)
    make_zone(devices, root, "intel-rapl:0:0", "core", 400_000)
    make_zone(devices, root, "intel-rapl:0:1", "uncore", 100_000)
    make_zone(devices, root, "intel-rapl:2", "psys", 9_000_000)
    make_zone(devices, root, "intel-rapl-mmio:0", "package-0", 1_000_000)
    (root / "intel-rapl:3").symlink_to(pkg1)  # the same zone reached twice
    return {"root": root, "pkg0": pkg0, "pkg1": pkg1}


def set_energy(zone: Path, value: int) -> None:
    (zone / "energy_uj").write_text(f"{value}\n")


def busy(seconds: float) -> int:
    """Burn CPU in this process for ``seconds`` of wall time."""
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


def test_rapl_sums_package_zones_only(powercap):
    meter = RaplMeter(powercap["root"])
    assert [z.name for z in meter.zones()] == ["package-0", "package-1"]
    assert all(z.max_energy_range_uj == MAX_RANGE for z in meter.zones())
    meter.start()
    set_energy(powercap["pkg0"], 1_000_000 + 2_500_000)
    set_energy(powercap["pkg1"], 5_000_000 + 500_000)
    reading = meter.stop()
    assert reading.joules == pytest.approx(3.0)
    assert reading.source == "rapl"
    assert reading.estimated is False
    assert reading.seconds >= 0
    assert "package-0" in reading.detail and "package-1" in reading.detail


def test_rapl_counter_wraparound(powercap):
    set_energy(powercap["pkg0"], MAX_RANGE - 1_000_000)
    meter = RaplMeter(powercap["root"])
    meter.start()
    set_energy(powercap["pkg0"], 500_000)  # wrapped past max_energy_range_uj
    reading = meter.stop()
    assert reading.joules == pytest.approx(1.5)
    assert "wrapped" in reading.detail


def test_rapl_status_and_selection_when_readable(powercap):
    status = RaplMeter(powercap["root"]).status()
    assert status.available is True
    assert "package-0, package-1" in status.detail
    meter = select_energy_meter(load_settings(), powercap_root=powercap["root"])
    assert isinstance(meter, RaplMeter)


def test_rapl_permission_denied_message_via_injected_reader(powercap):
    """Root can read anything, so the denial is injected; the message path is the same."""

    def deny_energy(path: Path) -> str:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return path.read_text()

    status = RaplMeter(powercap["root"], read=deny_energy).status()
    assert status.available is False
    assert "root" in status.detail
    assert f"sudo chmod o+r {powercap['root']}/intel-rapl:*/energy_uj" in status.fix
    assert "udev" in status.fix and "/etc/udev/rules.d/" in status.fix
    meter = select_energy_meter(
        load_settings(), powercap_root=powercap["root"], read=deny_energy, system="Linux"
    )
    assert isinstance(meter, CpuTimeMeter)
    statuses = energy_sources_status(powercap_root=powercap["root"], read=deny_energy)
    assert statuses[0].name == "rapl" and "chmod o+r" in statuses[0].fix


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads mode-000 files"
)
def test_rapl_permission_denied_by_file_mode(powercap):
    for zone in ("pkg0", "pkg1"):
        (powercap[zone] / "energy_uj").chmod(0)
    status = RaplMeter(powercap["root"]).status()
    assert status.available is False
    assert "chmod o+r" in status.fix
    assert isinstance(select_energy_meter(powercap_root=powercap["root"]), CpuTimeMeter)


def test_rapl_garbage_counter_is_not_available(powercap):
    set_energy(powercap["pkg1"], 0)
    (powercap["pkg1"] / "energy_uj").write_text("not a number\n")
    status = RaplMeter(powercap["root"]).status()
    assert status.available is False
    assert "cannot read" in status.detail


def test_rapl_no_package_zone(tmp_path):
    root = tmp_path / "powercap"
    root.mkdir()
    make_zone(tmp_path / "devices", root, "intel-rapl:0:0", "core", 1)
    status = RaplMeter(root).status()
    assert status.available is False
    assert "no RAPL package zone" in status.detail


def test_missing_powercap_falls_back_to_estimate(tmp_path):
    missing = tmp_path / "no-powercap"
    status = RaplMeter(missing).status()
    assert status.available is False
    meter = select_energy_meter(load_settings(watts_per_core=10.0), powercap_root=missing)
    assert isinstance(meter, CpuTimeMeter)
    assert meter.watts_per_core == 10.0
    with meter.measure() as m:
        busy(0.05)
    assert m.reading is not None
    assert m.reading.source == "estimate"
    assert m.reading.estimated is True
    assert "estimated" in m.reading.detail


def test_estimate_grows_with_real_cpu_work():
    watts = 10.0
    meter = CpuTimeMeter(watts_per_core=watts)
    meter.start()
    time.sleep(0.2)
    idle = meter.stop()
    meter.start()
    busy(0.2)
    work = meter.stop()
    assert work.joules > 0
    assert work.joules > idle.joules
    # Never more than every core busy for the whole window (plus one 10 ms clock tick of slack).
    bound = watts * (work.seconds * (psutil.cpu_count() or 1) + 0.02)
    assert work.joules <= bound
    assert work.seconds >= 0.2


def test_estimate_base_watts_adds_wall_time():
    meter = CpuTimeMeter(watts_per_core=0.0, base_watts=5.0)
    meter.start()
    time.sleep(0.1)
    reading = meter.stop()
    assert reading.joules == pytest.approx(5.0 * reading.seconds)
    assert "base" in reading.detail


def test_measure_context_manager_copes_with_overlap_and_errors(powercap):
    meter = RaplMeter(powercap["root"])
    with meter.measure() as outer:
        set_energy(powercap["pkg0"], 2_000_000)
        with meter.measure() as inner:
            set_energy(powercap["pkg1"], 6_000_000)
    assert inner.reading.joules == pytest.approx(1.0)
    assert outer.reading.joules == pytest.approx(2.0)
    with pytest.raises(ZeroDivisionError), meter.measure() as failed:
        1 / 0  # noqa: B018
    assert failed.reading is not None and failed.reading.source == "rapl"


def test_stop_before_start_is_an_error(powercap):
    with pytest.raises(RuntimeError):
        RaplMeter(powercap["root"]).stop()
    with pytest.raises(RuntimeError):
        CpuTimeMeter().stop()


def test_joules_per_token():
    reading = EnergyReading(3.0, "estimate", True, 1.0)
    assert joules_per_token(reading, 6) == pytest.approx(0.5)
    assert joules_per_token(reading, 0) is None
    assert reading.to_dict() == {
        "joules": 3.0,
        "source": "estimate",
        "estimated": True,
        "seconds": 1.0,
        "detail": "",
    }


def test_sources_status_lists_every_source(tmp_path):
    statuses = energy_sources_status(
        load_settings(watts_per_core=4.0), powercap_root=tmp_path / "none", system="Linux"
    )
    assert [s.name for s in statuses] == ["rapl", "macos-ioreport", "estimate"]
    assert [s.available for s in statuses] == [False, False, True]
    assert "4 W per busy core" in statuses[2].detail


def test_macos_status_without_and_with_macmon():
    assert macos_status("Linux", "x86_64").available is False
    intel = macos_status("Darwin", "x86_64", which=lambda name: None)
    assert intel.available is False and "sudo" in intel.detail
    absent = macos_status("Darwin", "arm64", which=lambda name: None)
    assert absent.available is False
    assert "brew install macmon" in absent.fix
    present = macos_status("Darwin", "arm64", which=lambda name: "/opt/homebrew/bin/macmon")
    assert present.available is True


def test_integrate_piecewise_power():
    samples = [(1.0, 2.0), (2.0, 4.0), (3.0, 6.0)]
    assert _integrate(samples, 0.0, 3.0) == pytest.approx(2.0 + 4.0 + 6.0)
    assert _integrate(samples, 0.0, 3.5) == pytest.approx(12.0 + 6.0 * 0.5)
    assert _integrate(samples, 0.0, 1.5) == pytest.approx(2.0 + 4.0 * 0.5)
    assert _integrate([(5.0, 3.0)], 0.0, 1.0) == pytest.approx(3.0)


FAKE_MACMON = """#!{python}
import json, sys, time
args = sys.argv[1:]
interval = int(args[args.index("-i") + 1]) / 1000 if "-i" in args else 1.0
assert args[0] == "pipe", args
while True:
    time.sleep(interval)
    print(json.dumps({{"cpu_power": 1.5, "gpu_power": 0.5, "ane_power": 0.0, "all_power": 2.0}}), flush=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="shebang script")
def test_macmon_meter_integrates_samples(tmp_path):
    fake = tmp_path / "macmon"
    fake.write_text(FAKE_MACMON.format(python=sys.executable))
    fake.chmod(0o755)
    meter = select_energy_meter(
        load_settings(),
        powercap_root=tmp_path / "none",
        system="Darwin",
        machine="arm64",
        which=lambda name: str(fake) if name == "macmon" else None,
    )
    assert isinstance(meter, MacmonMeter)
    with meter.measure() as m:
        time.sleep(0.6)
    reading = m.reading
    assert reading.source == "macos-ioreport"
    assert reading.estimated is False
    assert reading.joules == pytest.approx(2.0 * reading.seconds, rel=0.2)


def test_macmon_without_samples_falls_back_to_estimate(tmp_path):
    silent = tmp_path / "macmon"
    silent.write_text(f"#!{sys.executable}\nimport sys\nsys.exit(0)\n")
    silent.chmod(0o755)
    meter = MacmonMeter(str(silent), interval_ms=50)
    meter.start()
    reading = meter.stop()
    assert reading.estimated is True
    assert reading.source == "estimate"
    assert "no sample" in reading.detail
