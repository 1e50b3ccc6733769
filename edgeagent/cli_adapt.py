"""`edgeagent adapt`: history -> dataset -> LoRA adapter -> evaluated -> activated (or not)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from edgeagent.cli_output import echo as _echo
from edgeagent.cli_output import human_bytes as _human_bytes
from edgeagent.cli_output import print_json as _print_json
from edgeagent.config import load_settings as _settings


@click.group()
def adapt() -> None:
    """Specialize the local model on your own history (LoRA adapters)."""


def _registry(settings, tools_files=()):
    from edgeagent.agent.propose import build_tool_registry
    from edgeagent.tools.context import ToolContext

    context = ToolContext(settings=settings, allowed_roots=settings.allowed_roots)
    return build_tool_registry(None, context, [Path(p) for p in tools_files])


def _data_dir(settings) -> Path:
    from edgeagent.adapt.loop import adapters_dir

    return adapters_dir(settings) / "data"


def _show_counts(records, skipped, out: Path, as_json: bool) -> None:
    from edgeagent.adapt.dataset import clusters

    summary = {
        "out": str(out),
        "records": len(records),
        "clusters": dict(clusters(records).most_common()),
        "left_out": dict(skipped.most_common()),
    }
    if as_json:
        _print_json(summary)
        return
    _echo(f"wrote {len(records)} records to {out}")
    for name, count in summary["clusters"].items():
        _echo(f"  {count:5}  {name}")
    for reason, count in summary["left_out"].items():
        _echo(f"  left out {count}: {reason}")


def _last_trained_until(settings) -> float | None:
    from edgeagent.adapt.loop import read_index

    times = [e.get("trained_until") for e in read_index(settings) if e.get("trained_until")]
    return max(times) if times else None


@adapt.command("export")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="JSONL file to write.")
@click.option("--only-confirmed", is_flag=True, help="Only requests you marked good.")
@click.option(
    "--since-last", is_flag=True, help="Only requests newer than the last adapter's data."
)
@click.option("--max-per-cluster", type=int, default=None, help="Cap records per tool set.")
@click.option("--tools", "tools_files", multiple=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
def adapt_export(out, only_confirmed, since_last, max_per_cluster, tools_files, as_json) -> None:
    """Write the history's useful requests as an OpenAI chat-format JSONL dataset."""
    from edgeagent.adapt.dataset import write_jsonl
    from edgeagent.adapt.export import export_history
    from edgeagent.store import Store

    settings = _settings()
    registry = _registry(settings, tools_files)
    since = _last_trained_until(settings) if since_last else None
    with Store(settings.db_path, secrets=[settings.remote_api_key]) as store:
        result = export_history(
            store,
            registry.to_openai(),
            roots=settings.allowed_roots,
            secrets=[settings.remote_api_key],
            only_confirmed=only_confirmed,
            since=since,
            max_per_cluster=max_per_cluster,
        )
    path = (
        Path(out)
        if out
        else _data_dir(settings) / f"history-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
    )
    write_jsonl(result.records, path)
    _show_counts(result.records, result.skipped, path, as_json)


@adapt.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), default=None)
@click.option("--json", "as_json", is_flag=True)
def adapt_import(file, out, as_json) -> None:
    """Check, scrub and deduplicate an OpenAI chat-format JSONL dataset for training."""
    from edgeagent.adapt.dataset import Scrubber, curate, read_jsonl, write_jsonl

    settings = _settings()
    records = read_jsonl(file)
    scrubber = Scrubber(settings.allowed_roots, [settings.remote_api_key])
    kept, skipped = curate(scrubber.record(r) for r in records)
    path = Path(out) if out else _data_dir(settings) / f"imported-{Path(file).stem}.jsonl"
    write_jsonl(kept, path)
    _show_counts(kept, skipped, path, as_json)


@adapt.command("mark")
@click.argument("request_id")
@click.argument("verdict", type=click.Choice(["good", "bad", "none"]))
def adapt_mark(request_id: str, verdict: str) -> None:
    """Mark a request good (learn from it) or bad (never learn from it)."""
    from edgeagent.store import Store

    settings = _settings()
    with Store(settings.db_path) as store:
        matches = store.query("SELECT id FROM requests WHERE id LIKE ?", (request_id + "%",))
        if len(matches) != 1:
            raise click.ClickException(
                f"{len(matches)} requests match {request_id!r}; give more of the id (edgeagent logs)"
            )
        store.set_feedback(matches[0]["id"], None if verdict == "none" else verdict)
    _echo(f"{matches[0]['id']}: {verdict}")


def _resolve_base(settings, base: str | None) -> Path:
    from edgeagent.runtime.resolve import resolve_model

    return resolve_model(base or settings.model, settings, offline=True)


@adapt.command("train")
@click.option("--base", default=None, help="Base model: catalog id or GGUF path (default: yours).")
@click.option("--data", required=True, type=click.Path(dir_okay=False), help="JSONL dataset.")
@click.option(
    "--out", type=click.Path(dir_okay=False), default=None, help="Adapter .gguf to write."
)
@click.option("--steps", type=int, default=300, show_default=True)
@click.option("--rank", type=int, default=8, show_default=True)
@click.option("--mlp", is_flag=True, help="Adapt the MLP projections too (slower decoding).")
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--learning-rate", type=float, default=3e-4, show_default=True)
@click.option(
    "--time-budget", "minutes", type=float, default=30.0, show_default=True, help="Minutes."
)
@click.option("--holdout", type=float, default=0.2, show_default=True, help="Share kept for eval.")
@click.option("--json", "as_json", is_flag=True)
def adapt_train(
    base, data, out, steps, rank, mlp, batch_size, learning_rate, minutes, holdout, as_json
) -> None:
    """Train a LoRA adapter on a dataset; it is written only once llama.cpp loads it."""
    from edgeagent.adapt.dataset import read_jsonl
    from edgeagent.adapt.loop import adapters_dir, record_adapter
    from edgeagent.adapt.train import MLP_MODULES, TARGET_MODULES, TrainConfig, train_adapter
    from edgeagent.runtime.adapter import base_signature

    settings = _settings()
    base_path = _resolve_base(settings, base)
    if out is None:
        out = adapters_dir(settings) / f"{base_path.stem}-{time.strftime('%Y%m%d-%H%M%S')}.gguf"
    config = TrainConfig(
        base=base_path,
        data=Path(data),
        out=Path(out),
        steps=steps,
        rank=rank,
        alpha=2.0 * rank,
        targets=TARGET_MODULES + (MLP_MODULES if mlp else ()),
        batch_size=batch_size,
        learning_rate=learning_rate,
        time_budget_s=minutes * 60,
        holdout=holdout,
    )
    result = train_adapter(config, settings, _registry(settings), progress=not as_json)
    created = [r.get("metadata", {}).get("created_at") for r in read_jsonl(data)]
    record_adapter(
        settings,
        {
            "path": str(result.out.resolve()),
            "base": str(base_path),
            "base_signature": base_signature(base_path),
            "data": str(Path(data).resolve()),
            "holdout": holdout,
            "created_at": time.time(),
            "trained_until": max((c for c in created if c), default=None),
            "training": result.to_dict(),
        },
    )
    if as_json:
        _print_json(result.to_dict())
        return
    _echo(
        f"wrote {result.out} ({_human_bytes(result.out.stat().st_size)}): {result.steps} steps on "
        f"{result.examples} examples from {result.records} records in {result.seconds:.0f} s "
        f"(stopped by {result.stopped_by}); loss {result.first_loss} -> {result.last_loss}"
    )
    _echo(f"next: edgeagent adapt eval {result.out}")


@adapt.command("eval")
@click.argument("adapter", type=click.Path(dir_okay=False))
@click.option("--base", default=None, help="Base model (default: the one it was trained on).")
@click.option("--data", type=click.Path(dir_okay=False), default=None, help="Held-out JSONL.")
@click.option(
    "--bfcl", "bfcl_items", type=int, default=0, help="Also N BFCL items per category (bfcl-eval)."
)
@click.option("--no-activate", is_flag=True, help="Only report; never change config.toml.")
@click.option("--json", "as_json", is_flag=True)
def adapt_eval(adapter, base, data, bfcl_items, no_activate, as_json) -> None:
    """Compare base and adapter on held-out examples; activate the adapter if it is not worse."""
    from edgeagent.adapt.dataset import read_jsonl
    from edgeagent.adapt.loop import activate, entry_for, evaluate, held_out, record_adapter

    settings = _settings()
    entry = entry_for(settings, Path(adapter)) or {}
    base_path = _resolve_base(settings, base or entry.get("base"))
    if data:
        records = read_jsonl(data)
    elif entry.get("data") and entry.get("holdout"):
        records = held_out(read_jsonl(entry["data"]), entry["holdout"])[1]
    else:
        raise click.ClickException(
            "no held-out data: pass --data FILE (examples the adapter was not trained on)"
        )
    report = evaluate(settings, base_path, Path(adapter), records, _registry(settings))
    if bfcl_items:
        from edgeagent.adapt.loop import bfcl_compare

        report["bfcl"] = bfcl_compare(settings, base_path, Path(adapter), bfcl_items)
        if report["bfcl"]["adapter"] < report["bfcl"]["base"]:
            report["better"] = False
            report["verdict"] += (
                f"; but BFCL accuracy drops {report['bfcl']['base']:.0%} -> "
                f"{report['bfcl']['adapter']:.0%}"
            )
    report["activated"] = bool(report["better"] and not no_activate)
    if report["activated"]:
        report["config"] = str(activate(settings, Path(adapter)))
    if entry:
        record_adapter(settings, {**entry, "evaluation": report})
    if as_json:
        _print_json(report)
        return
    for name in ("base", "adapter"):
        s = report[name]
        _echo(
            f"{name:8} {s['examples']} examples, token accuracy {s['token_accuracy']:.1%}, "
            f"mean log-prob {s['mean_logprob']:.3f}, all tokens right {s['exact']:.1%}"
        )
    if "bfcl" in report:
        b = report["bfcl"]
        _echo(f"BFCL     {b['items']} items: base {b['base']:.1%}, adapter {b['adapter']:.1%}")
    _echo(report["verdict"])
    _echo(
        f"activated: adapter = {Path(adapter).resolve()} in {report['config']}"
        if report["activated"]
        else "not activated"
    )


@adapt.command("status")
@click.option("--json", "as_json", is_flag=True)
def adapt_status(as_json: bool) -> None:
    """New useful traces since the last adapter, and what the last adapter scored."""
    from edgeagent.adapt.export import export_history
    from edgeagent.adapt.loop import read_index
    from edgeagent.store import Store

    settings = _settings()
    entries = read_index(settings)
    last = entries[-1] if entries else None
    since = _last_trained_until(settings)
    with Store(settings.db_path, secrets=[settings.remote_api_key]) as store:
        fresh = export_history(
            store, _registry(settings).to_openai(), roots=settings.allowed_roots, since=since
        )
    status = {
        "active_adapter": str(settings.adapter) if settings.adapter else None,
        "adapters": len(entries),
        "new_useful_traces": len(fresh.records),
        "requests_since_last": fresh.considered,
        "last_adapter": last,
    }
    if as_json:
        _print_json(status)
        return
    _echo(f"active adapter:    {status['active_adapter'] or 'none'}")
    _echo(f"adapters trained:  {len(entries)}")
    _echo(
        f"new useful traces: {len(fresh.records)} of {fresh.considered} requests since "
        + ("the last adapter's data" if since else "the start")
    )
    if last:
        evaluation = last.get("evaluation")
        score = (
            f"{evaluation['verdict']}"
            if evaluation
            else "not evaluated (edgeagent adapt eval PATH)"
        )
        _echo(f"last adapter:      {last['path']}")
        _echo(f"  {score}")


@adapt.command("deactivate")
def adapt_deactivate() -> None:
    """Stop using an adapter (removes `adapter` from config.toml)."""
    from edgeagent.adapt.loop import activate

    settings = _settings()
    _echo(f"removed adapter from {activate(settings, None)}")
