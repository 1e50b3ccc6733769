"""Bad-input attacks on the CLI (issue 8, items 4-6): each must end in one clear line, no hang.

Every attack runs ``python -m edgeagent.cli`` in a subprocess with a fresh EDGEAGENT_HOME, a
wall-clock bound and a 3 GB address-space limit, against the source tree given by ``--src``
(default: this checkout), so the same attacks can be replayed on an older commit:

    git worktree add /tmp/before <commit> && python bench/attack_inputs.py --src /tmp/before

An attack *fails* when the command prints a traceback, hangs past its bound, is killed, or
accepts what it should refuse. Prints one line per attack and a summary (``--json`` for data).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEMORY_LIMIT = 3 * 2**30

BAD_SETTINGS = [
    ("n_ctx", "1e999"),
    ("n_ctx", "inf"),
    ("n_ctx", "100000000000"),
    ("max_tokens", "0"),
    ("max_tokens", "-1"),
    ("temperature", "-1"),
    ("temperature", "nan"),
    ("decode_timeout_s", "nan"),
    ("max_steps", "0"),
    ("watts_per_core", "-7.5"),
]


@dataclass
class Outcome:
    """One attack: what was tried, whether edgeagent held, and what it printed."""

    attack: str
    held: bool
    why: str
    seconds: float
    stderr_tail: str = ""


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def cli(src: Path, home: Path, args: list[str], env: dict | None = None, timeout: float = 30.0):
    """Run the CLI; return (returncode or 'timeout', stdout, stderr, seconds)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEAGENT_")}
    full_env.update({"EDGEAGENT_HOME": str(home), "PYTHONPATH": str(src)}, **(env or {}))
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "edgeagent.cli", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            cwd=home,
            stdin=subprocess.DEVNULL,
            preexec_fn=_limit_memory,
        )
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
        return "timeout", "", err or "", time.monotonic() - started
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started


def judge(name: str, result, *, expect_refusal: bool = True, extra: str | None = None) -> Outcome:
    """Held = no traceback, no hang, no kill, and refused (exit != 0 with 'error:') if expected."""
    code, out, err, seconds = result
    tail = " | ".join(err.strip().splitlines()[-2:])[:200]
    if code == "timeout":
        return Outcome(name, False, "hung past its bound", seconds, tail)
    if "Traceback" in err or "Traceback" in out:
        return Outcome(name, False, "traceback", seconds, tail)
    if code < 0:
        return Outcome(name, False, f"killed by signal {-code}", seconds, tail)
    if expect_refusal and (code == 0 or not err.startswith("error: ")):
        return Outcome(name, False, f"accepted (exit {code})", seconds, tail)
    if not expect_refusal and code not in (0, 1):
        return Outcome(name, False, f"exit {code}", seconds, tail)
    if not expect_refusal and code == 1 and "[FAIL]" not in out:
        return Outcome(name, False, "refused a usable history", seconds, tail)
    if extra:
        return Outcome(name, False, extra, seconds, tail)
    return Outcome(name, True, "clear one-line refusal" if expect_refusal else "ok", seconds, tail)


def attack_settings(src: Path, home: Path) -> list[Outcome]:
    outcomes = []
    for name, value in BAD_SETTINGS:
        env = {f"EDGEAGENT_{name.upper()}": value}
        outcomes.append(judge(f"setting {name}={value}", cli(src, home, ["stats"], env)))
    return outcomes


def attack_schema_files(src: Path, home: Path) -> list[Outcome]:
    deep = home / "deep.json"
    deep.write_text('{"type":"array","items":' * 1000 + '{"type":"string"}' + "}" * 1000)
    fifo = home / "fifo.json"
    os.mkfifo(fifo)
    cases = [("deep", deep), ("/dev/zero", Path("/dev/zero")), ("fifo", fifo)]
    return [
        judge(
            f"grammar --schema {label}",
            cli(src, home, ["grammar", "--schema", str(path)], timeout=20),
        )
        for label, path in cases
    ]


def attack_tools_files(src: Path, home: Path) -> list[Outcome]:
    boom = home / "boom.py"
    boom.write_text("class Boom(BaseException):\n    pass\n\nraise Boom('x')\n")
    loops = home / "loops.py"
    loops.write_text("while True:\n    pass\n")
    cases = [("BaseException subclass", boom, 30), ("loop at import", loops, 30)]
    return [
        judge(
            f"tools file: {label}", cli(src, home, ["tools", "list", "--tools", str(p)], timeout=t)
        )
        for label, p, t in cases
    ]


def _history(home: Path, src: Path) -> Path:
    db = home / "edgeagent.db"
    script = (
        "from edgeagent.store import Store\n"
        f"s = Store({str(db)!r})\n"
        "c = s.start_conversation()\n"
        "r = s.start_request(c, 'hello', 'm')\n"
        "s.finish_request(r, answer='hi', latency_s=1.0, energy_j=1.0)\n"
        "r2 = s.start_request(c, 'odd', 'm')\n"
        "s.finish_request(r2, answer='x')\n"
        "s.close()\n"
    )
    subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": str(src)},
        check=True,
        cwd=home,
    )
    con = sqlite3.connect(db)
    con.execute("UPDATE requests SET latency_s = 'slow' WHERE prompt = 'odd'")
    con.commit()
    con.close()
    return db


def attack_history(src: Path, home: Path) -> list[Outcome]:
    _history(home, src)
    outcomes = [
        judge("stats with a text latency", cli(src, home, ["stats"]), expect_refusal=False),
        judge("logs with rows", cli(src, home, ["logs"]), expect_refusal=False),
    ]
    killed = (
        "import os\nfrom edgeagent.store import Store\n"
        f"s = Store({str(home / 'edgeagent.db')!r})\n"
        "s.start_request(None, 'killed', 'm')\nos.kill(os.getpid(), 9)\n"
    )
    subprocess.run(
        [sys.executable, "-c", killed], env={**os.environ, "PYTHONPATH": str(src)}, cwd=home
    )
    result = cli(src, home, ["logs", "--json"])
    stuck = '"status": "running"' in result[1]
    outcomes.append(
        judge(
            "killed request marked at next start",
            result,
            expect_refusal=False,
            extra="left 'running' forever" if stuck else None,
        )
    )
    return outcomes


def attack_databases(src: Path, home: Path) -> list[Outcome]:
    outcomes = []
    foreign = home / "foreign.db"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)").connection.close()
    newer = home / "newer.db"
    subprocess.run(
        [sys.executable, "-c", f"from edgeagent.store import Store; Store({str(newer)!r}).close()"],
        env={**os.environ, "PYTHONPATH": str(src)},
        check=True,
        cwd=home,
    )
    con = sqlite3.connect(newer)
    con.execute("INSERT INTO _migrations VALUES ('m999_future', 0)")
    con.commit()
    con.close()
    for label, db in (
        ("foreign", foreign),
        ("newer-schema", newer),
        ("/dev/null", Path(os.devnull)),
    ):
        env = {"EDGEAGENT_DB_PATH": str(db)}
        doctor = cli(src, home, ["doctor"], env)
        said_ok = any(line.startswith("[ok  ] database") for line in doctor[1].splitlines())
        outcomes.append(
            judge(
                f"doctor on a {label} database",
                doctor,
                expect_refusal=False,
                extra="doctor says [ok] database though run refuses it" if said_ok else None,
            )
        )
    devnull = cli(src, home, ["stats"], {"EDGEAGENT_DB_PATH": os.devnull})
    wrong_hint = "disk space" in devnull[2]
    outcomes.append(
        judge(
            "db_path=/dev/null", devnull, extra="hint says free disk space" if wrong_hint else None
        )
    )
    return outcomes


def attack_nan_model(src: Path, home: Path, model: Path | None) -> list[Outcome]:
    if model is None or not model.is_file():
        return []
    import numpy as np
    from gguf import GGUFReader

    broken = home / "nan.gguf"
    broken.write_bytes(model.read_bytes())
    reader = GGUFReader(broken)
    tensor = next(t for t in reader.tensors if t.name == "output_norm.weight")
    offset, count = int(tensor.data_offset), int(tensor.n_elements)
    del reader
    with open(broken, "r+b") as fh:
        fh.seek(offset)
        fh.write(np.full(count, np.nan, dtype=np.float32).tobytes())
    result = cli(
        src, home, ["run", "--offline", "--json", "--model", str(broken), "Say hi."], timeout=120
    )
    confident = '"confidence": 1.0' in result[1]
    return [
        judge(
            "NaN model",
            result,
            extra="answered with confidence 1.0" if confident else None,
        )
    ]


ATTACKS: list[Callable[[Path, Path], list[Outcome]]] = [
    attack_settings,
    attack_schema_files,
    attack_tools_files,
    attack_history,
    attack_databases,
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=ROOT, help="source tree to attack")
    parser.add_argument(
        "--model", type=Path, default=None, help="a SmolLM2 GGUF for the NaN attack"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    outcomes: list[Outcome] = []
    for attack in [*ATTACKS, lambda s, h: attack_nan_model(s, h, args.model)]:
        with tempfile.TemporaryDirectory(prefix="edgeagent-attack-") as tmp:
            outcomes.extend(attack(args.src.resolve(), Path(tmp)))
    held = sum(o.held for o in outcomes)
    if args.json:
        print(
            json.dumps(
                {"tries": len(outcomes), "held": held, "attacks": [asdict(o) for o in outcomes]},
                indent=2,
            )
        )
        return
    for o in outcomes:
        mark = "held" if o.held else "FAIL"
        print(f"[{mark}] {o.attack:44} {o.why:46} {o.seconds:5.1f}s  {o.stderr_tail[:90]}")
    print(f"{held}/{len(outcomes)} attacks held; {len(outcomes) - held} failed")


if __name__ == "__main__":
    main()
