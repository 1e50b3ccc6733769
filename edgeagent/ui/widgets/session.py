"""The session panel (F2): how latency and energy move over this session, and the machine now.

One point per finished request (from ``TurnDone.result``): latency and energy as sparklines with
their last, median and max values, decode speed in tokens/s, joules per output token; and the
machine's CPU load, free RAM and battery (psutil), read when the panel refreshes.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Sparkline, Static


@dataclass(frozen=True)
class RequestPoint:
    """What one finished request cost."""

    latency_s: float
    energy_j: float
    output_tokens: int
    decode_s: float

    @property
    def tokens_per_s(self) -> float:
        return self.output_tokens / self.decode_s if self.decode_s > 0 else 0.0

    @property
    def joules_per_token(self) -> float:
        return self.energy_j / self.output_tokens if self.output_tokens else 0.0


def point_of(result) -> RequestPoint:
    """A ``RequestPoint`` from an ``AgentResult``."""
    return RequestPoint(
        result.latency_s, result.energy_j, result.usage.output_tokens, result.usage.total_s
    )


def series_line(label: str, values: list[float], unit: str) -> Text:
    """``latency  last 2.10 s · median 1.90 s · max 6.00 s (12 requests)``."""
    text = Text(f"{label:<9}", style="bold")
    if not values:
        text.append("no request yet", style="dim")
        return text
    text.append(
        f"last {values[-1]:.2f} {unit} · median {statistics.median(values):.2f} {unit} · "
        f"max {max(values):.2f} {unit} ({len(values)} requests)"
    )
    return text


def machine_line() -> Text:
    """CPU load, free RAM and battery, read now."""
    import psutil

    cpu = psutil.cpu_percent(interval=None)
    memory = psutil.virtual_memory()
    text = Text("machine  ", style="bold")
    text.append(f"CPU {cpu:.0f}% · RAM free {memory.available / 2**30:.1f} GiB")
    battery = psutil.sensors_battery() if hasattr(psutil, "sensors_battery") else None
    if battery is None:
        text.append(" · no battery (mains)", style="dim")
    else:
        plugged = "charging" if battery.power_plugged else "on battery"
        text.append(f" · battery {battery.percent:.0f}% ({plugged})")
    return text


class SessionPanel(Vertical):
    """Sparklines of latency and energy per request, and the figures around them."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.points: list[RequestPoint] = []

    def compose(self) -> ComposeResult:
        yield Static(id="session-latency")
        yield Sparkline([], id="latency-spark", summary_function=max)
        yield Static(id="session-energy")
        yield Sparkline([], id="energy-spark", summary_function=max)
        yield Static(id="session-speed")
        yield Static(id="session-machine")

    def on_mount(self) -> None:
        self.redraw()

    def add(self, point: RequestPoint) -> None:
        """One more finished request."""
        self.points.append(point)
        self.redraw()

    def redraw(self) -> None:
        latencies = [p.latency_s for p in self.points]
        energies = [p.energy_j for p in self.points]
        self.query_one("#session-latency", Static).update(series_line("latency", latencies, "s"))
        self.query_one("#latency-spark", Sparkline).data = latencies or [0.0]
        self.query_one("#session-energy", Static).update(series_line("energy", energies, "J"))
        self.query_one("#energy-spark", Sparkline).data = energies or [0.0]
        speed = Text("decode   ", style="bold")
        if self.points:
            last = self.points[-1]
            speed.append(
                f"{last.tokens_per_s:.1f} tokens/s · {last.joules_per_token:.2f} J per output "
                f"token (last request)"
            )
        else:
            speed.append("no request yet", style="dim")
        self.query_one("#session-speed", Static).update(speed)
        self.query_one("#session-machine", Static).update(machine_line())
