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


# fields by what the user needs most: the first ones stay when the terminal is narrow
PRIORITY = ("state", "network", "energy", "p50", "model")


class StatusBar(Widget):
    """One line under the input; every field is a reactive the app sets on the UI thread.

    When the line does not fit, fields are dropped in a fixed order (``PRIORITY``, last
    first), never cut in the middle: at 80 columns the state, the network switch, the energy
    and p50 stay; the model's name goes first (it is in the header too).
    """

    model_name: reactive[str] = reactive("")
    network: reactive[bool] = reactive(False)
    remote: reactive[bool] = reactive(False)
    state: reactive[str] = reactive("starting")
    energy: reactive[str] = reactive("")
    p50_s: reactive[float | None] = reactive(None)

    def _fields(self) -> dict[str, Text]:
        """Each field as styled text."""
        network = Text()
        if self.network:
            network.append("network on", style="bold yellow")
            if not self.remote:
                network.append(" (no remote)", style="dim")
        else:
            network.append("network off", style="bold green")
        energy = Text("energy ")
        energy.append(self.energy or "-", style="bold" if self.energy else "dim")
        p50 = "-" if self.p50_s is None else f"{self.p50_s:.2f} s"
        return {
            "model": Text(self.model_name or "no model", style="bold"),
            "network": network,
            "state": Text(self.state, style="italic"),
            "energy": energy,
            "p50": Text(f"p50 {p50}"),
        }

    def line(self, width: int) -> Text:
        """The bar for ``width`` columns: whole fields in display order, dropped by priority."""
        fields = self._fields()
        order = ["model", "network", "state", "energy", "p50"]
        kept = list(PRIORITY)
        while True:
            shown = [name for name in order if name in kept]
            text = Text(no_wrap=True, overflow="ellipsis")
            text.append(" ")
            for i, name in enumerate(shown):
                if i:
                    text.append(SEPARATOR, style="dim")
                text.append_text(fields[name])
            if text.cell_len <= width or len(kept) == 1:
                return text
            kept.pop()

    def render(self) -> Text:
        return self.line(self.size.width or 200)

    @property
    def plain(self) -> str:
        """The bar as plain text at its current width (for tests and logs)."""
        return self.render().plain
