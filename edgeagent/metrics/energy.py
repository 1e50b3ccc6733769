"""Energy per request: Linux RAPL counters, a sudo-free macOS reader, else a labelled CPU-time estimate."""

from __future__ import annotations

import contextlib
import copy
import json
import platform
import re
import shutil
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    from edgeagent.config import Settings

DEFAULT_POWERCAP_ROOT = Path("/sys/class/powercap")
DEFAULT_WATTS_PER_CORE = 7.5
SOURCES = ("rapl", "macos-ioreport", "estimate")

_PACKAGE_ZONE = re.compile(r"^intel-rapl:(\d+)$")

Reader = Callable[[Path], str]
Which = Callable[[str], "str | None"]


@dataclass(frozen=True)
class EnergyReading:
    """Energy used over one measured window, with where the number came from."""

    joules: float
    source: str
    estimated: bool
    seconds: float
    detail: str = ""

    def to_dict(self) -> dict:
        """Plain dict for JSON output and the store."""
        return asdict(self)


@dataclass(frozen=True)
class SourceStatus:
    """Whether one energy source can be used here, and what to do if it cannot."""

    name: str
    available: bool
    detail: str
    fix: str | None = None


def joules_per_token(reading: EnergyReading, tokens: int) -> float | None:
    """Joules per output token, or None when no token was produced."""
    if tokens <= 0:
        return None
    return reading.joules / tokens


class EnergyMeter(ABC):
    """Measures the energy used between ``start()`` and ``stop()``.

    ``stop()`` returns an :class:`EnergyReading` whose ``source`` and ``estimated`` fields say
    how the number was obtained. A meter holds the state of one window at a time; use
    ``with meter.measure() as m: ...`` (then ``m.reading``) for windows that may overlap:
    each ``measure()`` runs on its own copy of the meter.
    """

    source: str = ""
    estimated: bool = False

    @abstractmethod
    def start(self) -> None:
        """Begin a measurement window."""

    @abstractmethod
    def stop(self) -> EnergyReading:
        """End the window and return the energy used during it."""

    def measure(self) -> Measurement:
        """A context manager measuring its body; the reading is set on exit."""
        return Measurement(copy.copy(self))


class Measurement:
    """Context manager returned by ``EnergyMeter.measure()``; ``reading`` is set on exit."""

    def __init__(self, meter: EnergyMeter) -> None:
        self.meter = meter
        self.reading: EnergyReading | None = None

    def __enter__(self) -> Measurement:
        self.meter.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.reading = self.meter.stop()


def _cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads), in seconds."""
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


class CpuTimeMeter(EnergyMeter):
    """Estimate: this process's CPU-time delta x watts per busy core (+ base watts x wall time)."""

    source = "estimate"
    estimated = True

    def __init__(self, watts_per_core: float = DEFAULT_WATTS_PER_CORE, base_watts: float = 0.0):
        self.watts_per_core = float(watts_per_core)
        self.base_watts = float(base_watts)
        self._t0: float | None = None
        self._cpu0 = 0.0

    def start(self) -> None:
        self._cpu0 = _cpu_seconds()
        self._t0 = time.perf_counter()

    def stop(self) -> EnergyReading:
        if self._t0 is None:
            raise RuntimeError("CpuTimeMeter.stop() called before start()")
        seconds = time.perf_counter() - self._t0
        cpu = max(0.0, _cpu_seconds() - self._cpu0)
        self._t0 = None
        joules = cpu * self.watts_per_core + self.base_watts * seconds
        detail = f"{cpu:.3f} CPU-s x {self.watts_per_core:g} W per busy core"
        if self.base_watts:
            detail += f" + {self.base_watts:g} W base x {seconds:.3f} s"
        return EnergyReading(joules, self.source, True, seconds, detail + " (estimated)")


# ---------------------------------------------------------------------------------------------
# Linux RAPL (powercap)


@dataclass(frozen=True)
class RaplZone:
    """One RAPL package zone: its name (package-N), directory and counter range."""

    name: str
    path: Path
    max_energy_range_uj: int | None


def _read_text(path: Path) -> str:
    return path.read_text(encoding="ascii")


def rapl_permission_fix(powercap_root: Path = DEFAULT_POWERCAP_ROOT) -> str:
    """The exact commands that let a normal user read the RAPL counters."""
    rule = 'SUBSYSTEM=="powercap", KERNEL=="intel-rapl:*", ACTION=="add", RUN+="/bin/chmod o+r /sys%p/energy_uj"'
    return (
        f"until reboot: sudo chmod o+r {powercap_root}/intel-rapl:*/energy_uj ; "
        f"for good, a udev rule: echo '{rule}' | sudo tee /etc/udev/rules.d/99-edgeagent-rapl.rules "
        "&& sudo udevadm trigger --subsystem-match=powercap --action=add "
        "(readable counters are a power side channel, CVE-2020-8694: grant this on machines you trust)"
    )


class RaplMeter(EnergyMeter):
    """Sum of the RAPL package counters (``energy_uj``), wraparound-safe."""

    source = "rapl"
    estimated = False

    def __init__(
        self, powercap_root: Path | str = DEFAULT_POWERCAP_ROOT, read: Reader | None = None
    ) -> None:
        self.powercap_root = Path(powercap_root)
        self._read = read or _read_text
        self._zones: list[RaplZone] | None = None
        self._t0: float | None = None
        self._e0: list[int] = []

    def zones(self) -> list[RaplZone]:
        """Package zones only (no subzones, no psys), deduplicated, in index order."""
        if self._zones is None:
            self._zones = self._discover()
        return self._zones

    def _optional(self, path: Path) -> str | None:
        try:
            return self._read(path).strip()
        except (OSError, UnicodeDecodeError):
            return None

    def _discover(self) -> list[RaplZone]:
        if not self.powercap_root.is_dir():
            return []
        found: list[tuple[int, Path]] = []
        for entry in self.powercap_root.iterdir():
            match = _PACKAGE_ZONE.match(entry.name)
            if match and (entry / "energy_uj").exists():
                found.append((int(match.group(1)), entry))
        zones: list[RaplZone] = []
        seen_paths: set[Path] = set()
        seen_names: set[str] = set()
        for _, entry in sorted(found):
            real = entry.resolve()
            name = self._optional(entry / "name") or entry.name
            if real in seen_paths or name in seen_names or not name.startswith("package"):
                continue
            seen_paths.add(real)
            seen_names.add(name)
            raw_max = self._optional(entry / "max_energy_range_uj")
            max_range = int(raw_max) if raw_max and raw_max.isdigit() else None
            zones.append(RaplZone(name, entry, max_range))
        return zones

    def _energies(self) -> list[int]:
        return [int(self._read(z.path / "energy_uj").strip()) for z in self.zones()]

    def status(self) -> SourceStatus:
        """Readable? If not, why, and the fix."""
        root = self.powercap_root
        if not root.is_dir():
            if platform.system() != "Linux":
                return SourceStatus("rapl", False, f"not Linux ({platform.system()})")
            return SourceStatus(
                "rapl",
                False,
                f"{root} does not exist (a VM, a container or a kernel without intel_rapl)",
                "on bare-metal x86 Linux: sudo modprobe intel_rapl_msr; VMs and containers expose none",
            )
        zones = self.zones()
        if not zones:
            return SourceStatus(
                "rapl",
                False,
                f"no RAPL package zone (intel-rapl:N with energy_uj) under {root}",
                "on bare-metal x86 Linux: sudo modprobe intel_rapl_msr",
            )
        try:
            self._energies()
        except PermissionError:
            return SourceStatus(
                "rapl",
                False,
                "energy_uj is readable only by root (the default since Linux 5.10)",
                rapl_permission_fix(root),
            )
        except (OSError, ValueError) as exc:
            return SourceStatus("rapl", False, f"cannot read energy_uj: {exc}")
        names = ", ".join(z.name for z in zones)
        return SourceStatus("rapl", True, f"{names} under {root}")

    def start(self) -> None:
        self._e0 = self._energies()
        self._t0 = time.perf_counter()

    def stop(self) -> EnergyReading:
        if self._t0 is None:
            raise RuntimeError("RaplMeter.stop() called before start()")
        end = self._energies()
        seconds = time.perf_counter() - self._t0
        self._t0 = None
        total_uj = 0
        wrapped = []
        for zone, before, after in zip(self.zones(), self._e0, end, strict=True):
            delta = after - before
            if delta < 0:
                wrapped.append(zone.name)
                # The counter restarts at 0 after max_energy_range_uj; without it, count from 0.
                delta = (
                    (zone.max_energy_range_uj - before + after)
                    if zone.max_energy_range_uj
                    else after
                )
            total_uj += delta
        detail = "+".join(z.name for z in self.zones()) + " (whole CPU package, all processes)"
        if wrapped:
            detail += f" (counter wrapped: {', '.join(wrapped)})"
        return EnergyReading(total_uj / 1e6, self.source, False, seconds, detail)


# ---------------------------------------------------------------------------------------------
# macOS: macmon (IOReport, no sudo). powermetrics needs sudo and is never called.


class MacmonMeter(EnergyMeter):
    """Integrates ``macmon pipe`` power samples (CPU+GPU+ANE watts) over the window."""

    source = "macos-ioreport"
    estimated = False

    def __init__(
        self,
        executable: str = "macmon",
        interval_ms: int = 100,
        watts_per_core: float = DEFAULT_WATTS_PER_CORE,
    ) -> None:
        self.executable = executable
        self.interval_ms = int(interval_ms)
        self.watts_per_core = watts_per_core
        self._proc: subprocess.Popen | None = None

    def start(self) -> None:
        self._lock = threading.Lock()
        self._first = threading.Event()
        self._samples: list[tuple[float, float]] = []
        self._fallback = CpuTimeMeter(self.watts_per_core)
        self._fallback.start()
        self._t0 = time.perf_counter()
        self._proc = subprocess.Popen(
            [self.executable, "pipe", "-i", str(self.interval_ms)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._thread = threading.Thread(target=self._pump, args=(self._proc,), daemon=True)
        self._thread.start()

    def _pump(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            power = _macmon_watts(line)
            if power is None:
                continue
            with self._lock:
                self._samples.append((time.perf_counter(), power))
            self._first.set()

    def stop(self) -> EnergyReading:
        if self._proc is None:
            raise RuntimeError("MacmonMeter.stop() called before start()")
        end = time.perf_counter()
        deadline = end + 2.0 + 3 * self.interval_ms / 1000
        while not self._first.is_set() and time.perf_counter() < deadline:
            if self._proc.poll() is not None:  # macmon exited: drain what it printed, stop waiting
                self._thread.join(timeout=1.0)
                break
            self._first.wait(0.05)
        proc, self._proc = self._proc, None
        with self._lock:
            samples = list(self._samples)
        proc.terminate()
        try:
            proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._thread.join(timeout=1.0)
        estimate = self._fallback.stop()
        seconds = end - self._t0
        if not samples:
            detail = f"macmon produced no sample; {estimate.detail}"
            return EnergyReading(estimate.joules, estimate.source, True, seconds, detail)
        joules = _integrate(samples, self._t0, end)
        used = sum(1 for t, _ in samples if t <= end)
        return EnergyReading(
            joules,
            self.source,
            False,
            seconds,
            f"macmon, {used} samples (whole SoC, all processes)",
        )


def _macmon_watts(line: str) -> float | None:
    """CPU+GPU+ANE watts from one ``macmon pipe`` JSON line, or None if unreadable."""
    try:
        sample = json.loads(line)
        power = sample.get("all_power")
        if power is None:
            power = sum(float(sample.get(k, 0.0)) for k in ("cpu_power", "gpu_power", "ane_power"))
        return float(power)
    except (ValueError, TypeError, AttributeError):
        return None


def _integrate(samples: list[tuple[float, float]], start: float, end: float) -> float:
    """Joules over [start, end]; each (time, watts) sample is the mean power since the previous."""
    joules, prev, power = 0.0, start, samples[0][1]
    for t, power in samples:
        if t >= end:
            return joules + power * (end - prev)
        joules += power * (t - prev)
        prev = t
    return joules + power * (end - prev)


def macos_status(
    system: str | None = None, machine: str | None = None, which: Which | None = None
) -> SourceStatus:
    """Is a sudo-free macOS power reader (macmon) available?"""
    system = system or platform.system()
    machine = machine or platform.machine()
    which = which or shutil.which
    if system != "Darwin":
        return SourceStatus("macos-ioreport", False, f"not macOS ({system})")
    if machine != "arm64":
        return SourceStatus(
            "macos-ioreport",
            False,
            "Intel Mac: only powermetrics reports power, and it needs sudo (never called)",
        )
    exe = which("macmon")
    if exe:
        return SourceStatus("macos-ioreport", True, f"macmon at {exe} (IOReport, no sudo)")
    return SourceStatus(
        "macos-ioreport",
        False,
        "powermetrics needs sudo (never called) and macmon is not installed",
        "brew install macmon (reads the same IOReport counters without sudo)",
    )


# ---------------------------------------------------------------------------------------------
# Selection


def _watts(settings: Settings | None) -> float:
    return float(getattr(settings, "watts_per_core", DEFAULT_WATTS_PER_CORE))


def energy_sources_status(
    settings: Settings | None = None,
    *,
    powercap_root: Path | str = DEFAULT_POWERCAP_ROOT,
    read: Reader | None = None,
    system: str | None = None,
    machine: str | None = None,
    which: Which | None = None,
) -> list[SourceStatus]:
    """Every energy source, in order of preference, with availability and a fix."""
    estimate = SourceStatus(
        "estimate",
        True,
        f"process CPU time x {_watts(settings):g} W per busy core (watts_per_core), labelled estimated",
    )
    return [
        RaplMeter(powercap_root, read).status(),
        macos_status(system, machine, which),
        estimate,
    ]


def select_energy_meter(
    settings: Settings | None = None,
    *,
    powercap_root: Path | str = DEFAULT_POWERCAP_ROOT,
    read: Reader | None = None,
    system: str | None = None,
    machine: str | None = None,
    which: Which | None = None,
) -> EnergyMeter:
    """RAPL when readable, else macmon on Apple Silicon, else the labelled CPU-time estimate."""
    rapl = RaplMeter(powercap_root, read)
    with contextlib.suppress(OSError):
        if rapl.status().available:
            return rapl
    mac = macos_status(system, machine, which)
    if mac.available:
        exe = (which or shutil.which)("macmon") or "macmon"
        return MacmonMeter(exe, watts_per_core=_watts(settings))
    return CpuTimeMeter(_watts(settings))
