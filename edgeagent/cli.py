"""The `edgeagent` command line. Heavy modules (llama_cpp, textual) are imported only when used."""

from __future__ import annotations

import json
import sys

import click

from edgeagent.__about__ import __version__
from edgeagent.cli_output import echo, human_bytes, print_json
from edgeagent.errors import EdgeAgentError


def _settings(**overrides):
    from edgeagent.config import load_settings

    return load_settings(**overrides)


def _network_overrides(offline: bool | None) -> dict:
    """--offline: no connection at all (no downloads either); --online: remote LLM allowed."""
    if offline is None:
        return {}
    return {"offline": offline, "allow_network": not offline}


# the CLI's printing helpers, under the names its commands use
_echo, _print_json, _human_bytes = echo, print_json, human_bytes


class EdgeAgentGroup(click.Group):
    """A click group that turns EdgeAgentError into a one-line message and its exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EdgeAgentError as exc:
            message = exc.message
            path = getattr(exc, "path", None)
            if path and path != "$" and path not in message:
                message += f" at {path}"
            _echo(f"error: {message}", err=True)
            if exc.hint:
                _echo(f"hint: {exc.hint}", err=True)
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
    "--adapter",
    type=click.Path(dir_okay=False),
    default=None,
    help="A GGUF LoRA adapter for the model (edgeagent adapt train).",
)
@click.option(
    "--offline/--online",
    default=None,
    help="--offline: no connection at all; --online: a remote LLM may be consulted.",
)
def chat(model: str | None, adapter: str | None, offline: bool | None) -> None:
    """Open the terminal app (the default command)."""
    from edgeagent.ui.app import run_app

    overrides = {"model": model, "adapter": adapter, **_network_overrides(offline)}
    settings = _settings(**overrides)
    run_app(settings, first_run=model is None and _first_run(settings))


def _first_run(settings) -> bool:
    """No model chosen anywhere (option, EDGEAGENT_MODEL, config.toml) and the default model
    not installed: the app opens on its model picker instead of pulling the default silently."""
    import os

    from edgeagent.config import tomllib
    from edgeagent.errors import EdgeAgentError
    from edgeagent.runtime.catalog import is_installed, load_catalog

    if os.environ.get("EDGEAGENT_MODEL"):
        return False
    try:
        if "model" in tomllib.loads(settings.config_path.read_text(encoding="utf-8")):
            return False
    except (OSError, tomllib.TOMLDecodeError):
        pass
    try:
        entry = load_catalog().get(settings.model)
    except EdgeAgentError:
        return False  # a path or an unknown id: not the catalog default
    return not is_installed(entry, settings)


@cli.command()
@click.argument("prompt")
@click.option("--model", "model", default=None, help="Catalog id or path to a GGUF file.")
@click.option(
    "--adapter",
    type=click.Path(dir_okay=False),
    default=None,
    help="A GGUF LoRA adapter for the model (edgeagent adapt train).",
)
@click.option(
    "--offline/--online",
    default=None,
    help="--offline: no connection at all; --online: a remote LLM may be consulted.",
)
@click.option(
    "--tools",
    "tools_files",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="A Python file of @tool functions (repeatable).",
)
@click.option("--no-tools", is_flag=True, help="Plain chat: no tools, no grammar.")
@click.option("--yes", is_flag=True, help="Pre-approve side-effecting tool calls.")
@click.option("--max-tokens", type=int, default=None, help="Bound on output tokens per decode.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def run(
    prompt: str,
    model: str | None,
    adapter: str | None,
    offline: bool | None,
    tools_files: tuple[str, ...],
    no_tools: bool,
    yes: bool,
    max_tokens: int | None,
    as_json: bool,
) -> None:
    """Run one request headless: local model, tools under grammars, validated first."""
    from pathlib import Path

    from edgeagent.agent.loop import make_agent
    from edgeagent.runtime.session import load_model

    overrides = {
        "model": model,
        "adapter": adapter,
        "max_tokens": max_tokens,
        **_network_overrides(offline),
    }
    settings = _settings(**overrides)
    local = load_model(None, settings, progress=not as_json)
    agent = make_agent(
        settings,
        model=local,
        confirm=None if yes else _confirm_on_terminal,
        tools=[] if no_tools else None,
        tools_files=[Path(p) for p in tools_files],
        auto_approve=yes,
    )
    try:
        result = agent.run(prompt)
    finally:
        agent.close()
    data = result.to_dict()
    data["model_path"] = str(local.path)
    data["tokens_per_s"] = round(
        result.usage.output_tokens / result.usage.total_s if result.usage.total_s else 0.0, 2
    )
    if as_json:
        _print_json(data)
        return
    for call in data["calls"]:
        _echo(
            f"  -> {call['name']}({json.dumps(call['arguments'], ensure_ascii=False)}) "
            f"[{call['status']}, confidence {call['confidence']}, {call['route']}]",
            err=True,
        )
    for notice in data["notices"]:
        _echo(f"  note: {notice}", err=True)
    _echo(data["answer"])
    _echo(
        f"[{data['model']} · route {data['route']} · confidence {data['confidence']} · "
        f"{data['latency_s']:.2f} s · ttft {data['ttft_s']:.2f} s · {data['energy_j']:.2f} J "
        f"({data['energy_source']})]",
        err=True,
    )


def _confirm_on_terminal(call, tool) -> bool:
    """Ask on the terminal before a side-effecting call; without a terminal nobody can be asked."""
    from edgeagent.errors import ConfirmationUnavailable

    if not sys.stdin.isatty():
        raise ConfirmationUnavailable("no terminal to ask on")
    args = json.dumps(call.arguments, ensure_ascii=False)
    return click.confirm(f"Run {call.name}({args}) [{tool.risk}]?", default=False, err=True)


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
    _echo(f"{'id':34} {'size':>9} {'installed':>9} {'fits RAM':>8}  good for")
    for row in rows:
        mark = "*" if row.get("default") else " "
        _echo(
            f"{mark}{row['id']:33} {_human_bytes(row.get('size_bytes')):>9} "
            f"{'yes' if row['installed'] else 'no':>9} {'yes' if row['fits_ram'] else 'no':>8}  "
            f"{row.get('good_for', '')}"
        )
    _echo("(* = default model)")


@models.command("pull")
@click.argument("model_id")
def models_pull(model_id: str) -> None:
    """Download a catalog model, verified by sha256 before it is used."""
    from edgeagent.runtime.catalog import load_catalog
    from edgeagent.runtime.download import make_progress_bar, pull_model

    entry = load_catalog().get(model_id)
    path = pull_model(entry, _settings(), progress=make_progress_bar(entry.id))
    _echo(str(path))


@models.command("path")
@click.argument("model_id")
def models_path(model_id: str) -> None:
    """Where a catalog model's file lives (whether or not it is installed)."""
    from edgeagent.runtime.catalog import load_catalog, model_file_path

    _echo(str(model_file_path(load_catalog().get(model_id), _settings())))


@models.command("info")
@click.argument("id_or_path")
@click.option(
    "--adapter",
    type=click.Path(dir_okay=False),
    default=None,
    help="A GGUF LoRA adapter for the model (edgeagent adapt train).",
)
@click.option("--json", "as_json", is_flag=True)
def models_info(id_or_path: str, adapter: str | None, as_json: bool) -> None:
    """Facts read from a GGUF's header (no weights loaded), and the adapter it would load."""
    from edgeagent.runtime.adapter import check_adapter
    from edgeagent.runtime.gguf_info import inspect_gguf
    from edgeagent.runtime.resolve import resolve_model

    settings = _settings(adapter=adapter)
    path = resolve_model(id_or_path, settings, offline=True)
    info = inspect_gguf(path).to_dict()
    # the adapter `run`/`chat` would load with this model (--adapter, else config), checked
    info["adapter"] = check_adapter(path, settings.adapter).to_dict() if settings.adapter else None
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
        _echo(f"{key:22} {value}")
    _echo(f"{'special_tokens':22} {info.get('special_tokens')}")
    lora = info["adapter"]
    if lora:
        _echo(
            f"{'adapter':22} {lora['path']} (rank {lora['rank']}, alpha {lora['alpha']:g}, "
            f"{lora['tensors']} tensors, {_human_bytes(lora['file_size'])}, "
            f"trained on {lora['base_name'] or 'unknown base'})"
        )


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
    _echo(f"this machine: {_human_bytes(ram)} RAM, {cores} physical cores")
    for entry in picks:
        _echo(f"  {entry.id:34} {entry.params:>6}  {entry.good_for}")


# ---- grammars and tools ---------------------------------------------------------------------


def _read_json_file(path: str):
    from edgeagent.inputs import read_json_file

    return read_json_file(path)


def _openai_tools(doc) -> list[tuple[str, dict]] | None:
    """(name, parameters) pairs when ``doc`` is an OpenAI tool or tool list, else None."""
    items = doc if isinstance(doc, list) else [doc]
    if not items or not all(
        isinstance(i, dict) and ("function" in i or "parameters" in i) for i in items
    ):
        return None
    from edgeagent.tools.registry import tool_from_openai

    return [(t.name, t.parameters) for t in (tool_from_openai(i) for i in items)]


@cli.command()
@click.option(
    "--schema",
    "schema_file",
    required=True,
    type=click.Path(dir_okay=False),
    help="A JSON Schema of tool parameters, or tools in OpenAI format.",
)
@click.option(
    "--mode", default="auto", help="Envelope mode for tool lists: auto, required, none, NAME."
)
@click.option(
    "--string-cap", type=int, default=200, help="Length cap for strings without maxLength."
)
def grammar(schema_file: str, mode: str, string_cap: int) -> None:
    """Print the GBNF grammar for a parameter schema or an OpenAI tool list."""
    from edgeagent.grammar.compiler import compile_schema, describe_validator_keywords
    from edgeagent.grammar.envelope import build_envelope, describe_envelope_keywords

    doc = _read_json_file(schema_file)
    tools = _openai_tools(doc)
    if tools is not None:
        envelope = build_envelope(tools, mode=mode, string_cap=string_cap)
        text, notes = envelope.gbnf, describe_envelope_keywords(envelope)
    else:
        compiled = compile_schema(doc, string_cap=string_cap)
        notes = describe_validator_keywords(compiled) + [f"note: {n}" for n in compiled.notes]
        text = compiled.gbnf
    _echo(text.rstrip("\n"))
    for line in notes:
        _echo(line, err=True)


@cli.group()
def tools() -> None:
    """The tool registry: built-ins, plugins and --tools files."""


def _words(text: str, width: int = 70) -> str:
    """``text`` on one line, cut at a word boundary with an ellipsis when longer than ``width``."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    cut = flat[: width - 1].rsplit(" ", 1)[0] or flat[: width - 1]
    return cut.rstrip(" ,;:") + "…"


def _registry(tools_files: tuple[str, ...]):
    from pathlib import Path

    from edgeagent.agent.propose import build_tool_registry
    from edgeagent.tools.context import ToolContext

    settings = _settings()
    context = ToolContext(
        settings=settings,
        allowed_roots=settings.allowed_roots,
        allow_network=settings.allow_network,
        store=None,
    )
    return build_tool_registry(None, context, [Path(p) for p in tools_files])


@tools.command("list")
@click.option("--tools", "tools_files", multiple=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
def tools_list(tools_files: tuple[str, ...], as_json: bool) -> None:
    """Every tool: name, risk tier, source and description."""
    registry = _registry(tools_files)
    rows = [
        {
            "name": t.name,
            "risk": t.risk,
            "local_only": t.local_only,
            "source": t.source,
            "description": t.description,
            "parameters": t.parameters,
        }
        for t in registry
    ]
    if as_json:
        _print_json(rows)
        return
    for row in rows:
        _echo(f"{row['name']:16} {row['risk']:8} {row['source']:10} {_words(row['description'])}")


@tools.command("show")
@click.argument("name")
@click.option("--tools", "tools_files", multiple=True, type=click.Path(dir_okay=False))
def tools_show(name: str, tools_files: tuple[str, ...]) -> None:
    """A tool's schema, its grammar, and which keywords the validator enforces."""
    from edgeagent.grammar.compiler import compile_schema, describe_validator_keywords

    tool = _registry(tools_files).get(name)
    compiled = compile_schema(tool.parameters)
    _echo(
        f"{tool.name} [{tool.risk}{', local only' if tool.local_only else ''}] from {tool.source}"
    )
    _echo(tool.description)
    _echo("\nschema:")
    _echo(json.dumps(tool.parameters, indent=2, ensure_ascii=False))
    _echo("\ngrammar:")
    _echo(compiled.gbnf.rstrip("\n"))
    _echo("\nvalidator-enforced:")
    lines = describe_validator_keywords(compiled) + [f"note: {n}" for n in compiled.notes]
    lines += [f"semantic validator: {getattr(v, '__name__', v)}" for v in tool.validators]
    for line in lines or ["(nothing: the grammar enforces the whole schema)"]:
        _echo(f"  {line}")


# ---- history and metrics ------------------------------------------------------------------


@cli.command()
@click.option("--limit", type=int, default=20)
@click.option("--id", "request_id", default=None, help="Show one request in full.")
@click.option("--json", "as_json", is_flag=True)
def logs(limit: int, request_id: str | None, as_json: bool) -> None:
    """Browse the history: requests, their calls, routes, confidence, latency and energy."""
    from edgeagent.store import Store

    with Store(_settings().db_path) as store:
        data = store.request_detail(request_id) if request_id else store.recent_requests(limit)
    if as_json or request_id:
        _print_json(data)
        return
    for row in data:
        _echo(_log_line(row))


def _log_line(row: dict) -> str:
    """One request as a line of `edgeagent logs` (tolerates values a foreign writer left)."""
    import time

    created = row.get("created_at")
    when = (
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created))
        if isinstance(created, (int, float)) and not isinstance(created, bool)
        else str(created or "-")[:19]
    )
    conf = row.get("confidence")
    conf_text = f"{conf:.2f}" if isinstance(conf, (int, float)) else "-"
    latency = row.get("latency_s")
    latency_text = f"{latency:6.2f} s" if isinstance(latency, (int, float)) else "     - s"
    prompt = " ".join(str(row.get("prompt") or "").split())
    return (
        f"{when} {str(row.get('id'))[:12]} {str(row.get('status') or '-'):11} "
        f"{str(row.get('route') or '-'):14} conf {conf_text:<5} {latency_text}  {prompt[:50]}"
    )


@cli.command()
@click.option("--json", "as_json", is_flag=True)
def stats(as_json: bool) -> None:
    """The five production metrics from the history database."""
    from edgeagent.metrics.stats import compute_stats, format_stats
    from edgeagent.store import Store

    with Store(_settings().db_path) as store:
        data = compute_stats(store)
    if as_json:
        _print_json(data)
    else:
        _echo(format_stats(data))


@cli.group("eval")
def eval_group() -> None:
    """Benchmarks on public function-calling suites."""


@eval_group.command("bfcl")
@click.option("--categories", default="simple,multiple,irrelevance", show_default=True)
@click.option("--limit", type=int, default=None, help="Items per category.")
@click.option("--offset", type=int, default=0)
@click.option("--model", "model", default=None, help="Catalog id or path to a GGUF file.")
@click.option("--tool-choice", default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def eval_bfcl(
    categories: str,
    limit: int | None,
    offset: int,
    model: str | None,
    tool_choice: str,
    as_json: bool,
) -> None:
    """BFCL (AST checker) accuracy, call rate, schema validity and latency of the local model."""
    from edgeagent.eval.bfcl import format_report, run_bfcl

    settings = _settings(model=model, offline=True)
    report = run_bfcl(
        categories,
        limit=limit,
        model=model,
        settings=settings,
        offset=offset,
        tool_choice=tool_choice,
    )
    if as_json:
        _print_json(report)
    else:
        _echo(format_report(report))


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
        _echo(f"[{marks.get(check.status, check.status)}] {check.name}: {check.detail}")
        if check.fix and check.status != "ok":
            _echo(f"       fix: {check.fix}")
    if any(c.status == "fail" for c in checks):
        sys.exit(1)


def _add_adapt() -> None:
    from edgeagent.cli_adapt import adapt

    cli.add_command(adapt)


_add_adapt()


def main() -> None:
    """Console-script entry point.

    If code edgeagent ran (a tools file, a plugin) left a non-daemon thread behind, the
    interpreter would wait for it forever at exit: the exit code is kept and the process ends.
    """
    import os
    import threading

    code: int | str | None = 0
    try:
        cli(prog_name="edgeagent")
    except SystemExit as exc:
        code = exc.code
    lingering = [
        t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon
    ]
    if lingering:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code if isinstance(code, int) else 1)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
