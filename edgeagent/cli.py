"""The `edgeagent` command line. Heavy modules (llama_cpp, textual) are imported only when used."""

from __future__ import annotations

import json
import sys

import click

from edgeagent.__about__ import __version__
from edgeagent.errors import EdgeAgentError


def _settings(**overrides):
    from edgeagent.config import load_settings

    return load_settings(**overrides)


def _network_overrides(offline: bool | None) -> dict:
    """--offline: no connection at all (no downloads either); --online: remote LLM allowed."""
    if offline is None:
        return {}
    return {"offline": offline, "allow_network": not offline}


def _print_json(data) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _human_bytes(size: int | float | None) -> str:
    if size is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


class EdgeAgentGroup(click.Group):
    """A click group that turns EdgeAgentError into a one-line message and its exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EdgeAgentError as exc:
            click.echo(f"error: {exc.message}", err=True)
            if exc.hint:
                click.echo(f"hint: {exc.hint}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=EdgeAgentGroup, invoke_without_command=True)
@click.version_option(__version__, prog_name="edgeagent")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """edgeagent: a small local model does the agent's work, under grammars, validated first."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(chat)


@cli.command()
@click.option("--model", "model", default=None, help="Catalog id or path to a GGUF file.")
@click.option(
    "--offline/--online",
    default=None,
    help="--offline: no connection at all; --online: a remote LLM may be consulted.",
)
def chat(model: str | None, offline: bool | None) -> None:
    """Open the terminal app (the default command)."""
    from edgeagent.ui.app import run_app

    overrides = {"model": model, **_network_overrides(offline)}
    run_app(_settings(**overrides))


@cli.command()
@click.argument("prompt")
@click.option("--model", "model", default=None, help="Catalog id or path to a GGUF file.")
@click.option(
    "--offline/--online",
    default=None,
    help="--offline: no connection at all; --online: a remote LLM may be consulted.",
)
@click.option("--max-tokens", type=int, default=None, help="Bound on output tokens.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def run(
    prompt: str, model: str | None, offline: bool | None, max_tokens: int | None, as_json: bool
) -> None:
    """Run one request headless and print the answer."""
    from edgeagent.runtime.session import answer_once

    overrides = {"model": model, "max_tokens": max_tokens, **_network_overrides(offline)}
    settings = _settings(**overrides)
    result = answer_once(settings, prompt, progress=not as_json, on_text=None)
    if as_json:
        _print_json(result)
        return
    click.echo(result["answer"])
    click.echo(
        f"[{result['model']} · {result['latency_s']:.2f} s · ttft {result['ttft_s']:.2f} s · "
        f"{result['tokens_per_s']:.1f} tok/s · {result['energy_j']:.2f} J "
        f"({result['energy_source']})]",
        err=True,
    )


# ---- models ------------------------------------------------------------------------------


@cli.group()
def models() -> None:
    """List, fetch and inspect GGUF models."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True)
def models_list(as_json: bool) -> None:
    """Known models: installed or not, size, and whether they fit this machine's RAM."""
    import psutil

    from edgeagent.runtime.catalog import fits_in_ram, is_installed, load_catalog

    settings = _settings()
    available = psutil.virtual_memory().available
    rows = []
    for entry in load_catalog().entries:
        rows.append(
            {
                **entry.to_dict(),
                "installed": is_installed(entry, settings),
                "fits_ram": fits_in_ram(entry, available),
            }
        )
    if as_json:
        _print_json(rows)
        return
    click.echo(f"{'id':34} {'size':>9} {'installed':>9} {'fits RAM':>8}  good for")
    for row in rows:
        mark = "*" if row.get("default") else " "
        click.echo(
            f"{mark}{row['id']:33} {_human_bytes(row.get('size_bytes')):>9} "
            f"{'yes' if row['installed'] else 'no':>9} {'yes' if row['fits_ram'] else 'no':>8}  "
            f"{row.get('good_for', '')}"
        )
    click.echo("(* = default model)")


@models.command("pull")
@click.argument("model_id")
def models_pull(model_id: str) -> None:
    """Download a catalog model, verified by sha256 before it is used."""
    from edgeagent.runtime.catalog import load_catalog
    from edgeagent.runtime.download import make_progress_bar, pull_model

    entry = load_catalog().get(model_id)
    path = pull_model(entry, _settings(), progress=make_progress_bar(entry.id))
    click.echo(str(path))


@models.command("path")
@click.argument("model_id")
def models_path(model_id: str) -> None:
    """Where a catalog model's file lives (whether or not it is installed)."""
    from edgeagent.runtime.catalog import load_catalog, model_file_path

    click.echo(str(model_file_path(load_catalog().get(model_id), _settings())))


@models.command("info")
@click.argument("id_or_path")
@click.option("--json", "as_json", is_flag=True)
def models_info(id_or_path: str, as_json: bool) -> None:
    """Facts read from a GGUF's header (no weights loaded)."""
    from edgeagent.runtime.catalog import resolve_model
    from edgeagent.runtime.gguf_info import inspect_gguf

    path = resolve_model(id_or_path, _settings(), offline=True)
    info = inspect_gguf(path).to_dict()
    if as_json:
        _print_json(info)
        return
    for key in (
        "path",
        "architecture",
        "name",
        "parameters_human",
        "quantization",
        "file_size",
        "context_length",
        "vocab_size",
        "chat_template_family",
    ):
        value = info.get(key)
        if key == "file_size":
            value = _human_bytes(value)
        click.echo(f"{key:22} {value}")
    click.echo(f"{'special_tokens':22} {info.get('special_tokens')}")


@models.command("recommend")
@click.option("--json", "as_json", is_flag=True)
def models_recommend(as_json: bool) -> None:
    """Models that suit this machine's RAM and cores, best first."""
    import psutil

    from edgeagent.runtime.catalog import recommend

    ram = psutil.virtual_memory().total
    cores = psutil.cpu_count(logical=False) or 1
    picks = recommend(ram, cores)
    if as_json:
        _print_json([p.to_dict() for p in picks])
        return
    click.echo(f"this machine: {_human_bytes(ram)} RAM, {cores} physical cores")
    for entry in picks:
        click.echo(f"  {entry.id:34} {entry.params:>6}  {entry.good_for}")


# ---- doctor -------------------------------------------------------------------------------


@cli.command()
@click.option("--json", "as_json", is_flag=True)
def doctor(as_json: bool) -> None:
    """Check llama.cpp, hardware, energy sources, model folder and database."""
    from edgeagent.doctor import collect_report, report_to_dict

    checks = collect_report(_settings())
    if as_json:
        _print_json(report_to_dict(checks))
        return
    marks = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}
    for check in checks:
        click.echo(f"[{marks.get(check.status, check.status)}] {check.name}: {check.detail}")
        if check.fix and check.status != "ok":
            click.echo(f"       fix: {check.fix}")
    if any(c.status == "fail" for c in checks):
        sys.exit(1)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="edgeagent")


if __name__ == "__main__":  # pragma: no cover
    main()
