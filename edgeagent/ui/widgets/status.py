"""The status bar: model, network switch, state, energy of the last request, p50 latency."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

SEPARATOR = " │ "


def energy_label(joules: float, source: str, estimated: bool) -> str:
    """``"0.84 J (estimated)"``, ``"1.20 J (rapl)"`` or ``"0.90 J (macos-ioreport, estimated)"``."""
    if estimated:
        where = "estimated" if source == "estimate" else f"{source}, estimated"
    else:
        where = source
    return f"{joules:.2f} J ({where})"


class StatusBar(Widget):
    """One line under the input; every field is a reactive the app sets on the UI thread."""

    model_name: reactive[str] = reactive("")
    network: reactive[bool] = reactive(False)
    remote: reactive[bool] = reactive(False)
    state: reactive[str] = reactive("starting")
    energy: reactive[str] = reactive("")
    p50_s: reactive[float | None] = reactive(None)

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(" ")
        text.append(self.model_name or "no model", style="bold")
        text.append(SEPARATOR, style="dim")
        if self.network:
            text.append("network on", style="bold yellow")
            if not self.remote:
                text.append(" (no remote)", style="dim")
        else:
            text.append("network off", style="bold green")
        text.append(SEPARATOR, style="dim")
        text.append(self.state, style="italic")
        text.append(SEPARATOR, style="dim")
        text.append("energy ")
        text.append(self.energy or "-", style="bold" if self.energy else "dim")
        text.append(SEPARATOR, style="dim")
        p50 = "-" if self.p50_s is None else f"{self.p50_s:.2f} s"
        text.append(f"p50 {p50}")
        return text

    @property
    def plain(self) -> str:
        """The bar as plain text (for tests and logs)."""
        return self.render().plain
