#!/usr/bin/env bash
# Clean-install check: build the edgeagent wheel, check what it ships, install it with pipx into a
# throwaway PIPX_HOME/PIPX_BIN_DIR, then run `edgeagent --version`, `--help` and `doctor` from there.
#
# Usage: packaging/check_pipx_install.sh [--wheel-only] [--keep]
#   --wheel-only   build the wheel and check its contents; skip the pipx install
#   --keep         keep the throwaway directory (its path is printed at the end)
# Environment:
#   PYTHON          interpreter that builds the wheel and runs the pipx venv (default: python3)
#   PIP_FIND_LINKS  a folder with an already-built llama_cpp_python-*.whl: pip (run by pipx) takes
#                   it instead of compiling llama.cpp again (several minutes on 2 cores)
#   CMAKE_ARGS      llama.cpp build flags, used only if llama-cpp-python compiles (see README.md here)
# Exit status: 0 when every step passed; non-zero with a message naming the step that failed.
set -euo pipefail

WHEEL_ONLY=0
KEEP=0
for arg in "$@"; do
  case "$arg" in
    --wheel-only) WHEEL_ONLY=1 ;;
    --keep) KEEP=1 ;;
    -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$REPO/edgeagent/__about__.py")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/edgeagent-pipx-check.XXXXXX")

cleanup() {
  if [ "$KEEP" = 1 ]; then echo "== kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

step() { echo "== $*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }

# Nothing from the caller's edgeagent set-up may leak in: fresh home, no EDGEAGENT_* settings.
while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep '^EDGEAGENT_' || true)
export EDGEAGENT_HOME="$WORK/edgeagent-home"

step "python: $("$PYTHON" --version 2>&1), edgeagent $VERSION, work dir $WORK"
[ -n "$VERSION" ] || fail "cannot read __version__ from edgeagent/__about__.py"

# ---- 1. build the wheel --------------------------------------------------------------------
DIST="$WORK/dist"
if "$PYTHON" -m build --version >/dev/null 2>&1; then
  step "building the wheel with python -m build"
  "$PYTHON" -m build --wheel --outdir "$DIST" "$REPO" >"$WORK/build.log" 2>&1 \
    || { tail -n 40 "$WORK/build.log" >&2; fail "wheel build (log above)"; }
else
  step "building the wheel with pip wheel --no-deps"
  "$PYTHON" -m pip wheel --no-deps --wheel-dir "$DIST" "$REPO" >"$WORK/build.log" 2>&1 \
    || { tail -n 40 "$WORK/build.log" >&2; fail "wheel build (log above)"; }
fi
shopt -s nullglob
wheels=("$DIST"/edgeagent-*.whl)
shopt -u nullglob
[ "${#wheels[@]}" -eq 1 ] || fail "expected one edgeagent wheel in $DIST, found ${#wheels[@]}"
WHEEL=${wheels[0]}
step "built $(basename "$WHEEL") ($(du -h "$WHEEL" | cut -f1))"

# ---- 2. the wheel ships its run-time data -----------------------------------------------------
if command -v unzip >/dev/null 2>&1; then
  unzip -Z1 "$WHEEL" >"$WORK/contents.txt"
else
  "$PYTHON" -c 'import sys, zipfile; print("\n".join(zipfile.ZipFile(sys.argv[1]).namelist()))' \
    "$WHEEL" >"$WORK/contents.txt"
fi
grep -qx 'edgeagent/data/catalog.toml' "$WORK/contents.txt" \
  || fail "the wheel lacks edgeagent/data/catalog.toml (pyproject force-include)"
grep -q '^edgeagent/data/grammars/..*' "$WORK/contents.txt" \
  || fail "the wheel lacks edgeagent/data/grammars/* (pyproject force-include of grammars/)"
grep -qx 'edgeagent/cli.py' "$WORK/contents.txt" || fail "the wheel lacks edgeagent/cli.py"
if grep -q '^tests/\|\.gguf$' "$WORK/contents.txt"; then
  fail "the wheel ships tests or model weights: $(grep '^tests/\|\.gguf$' "$WORK/contents.txt" | head -3)"
fi
step "wheel contents ok: catalog.toml, $(grep -c '^edgeagent/data/grammars/.' "$WORK/contents.txt") grammar file(s)"

if [ "$WHEEL_ONLY" = 1 ]; then
  step "wheel-only check passed"
  exit 0
fi

# ---- 3. pipx, into a throwaway home ------------------------------------------------------------
if command -v pipx >/dev/null 2>&1; then
  PIPX=$(command -v pipx)
else
  step "pipx not found: installing it into a temporary venv"
  "$PYTHON" -m venv "$WORK/pipx-venv"
  "$WORK/pipx-venv/bin/python" -m pip install --quiet pipx || fail "pip install pipx"
  PIPX="$WORK/pipx-venv/bin/pipx"
fi
export PIPX_HOME="$WORK/pipx-home" PIPX_BIN_DIR="$WORK/bin" PIPX_MAN_DIR="$WORK/man"
step "pipx $("$PIPX" --version) with PIPX_HOME=$PIPX_HOME"
prebuilt=""
for dir in ${PIP_FIND_LINKS:-}; do
  dir=${dir#file://}
  for whl in "$dir"/llama_cpp_python-*.whl; do
    if [ -e "$whl" ]; then prebuilt="$prebuilt $(basename "$whl")"; fi
  done
done
if [ -n "$prebuilt" ]; then
  step "PIP_FIND_LINKS offers a prebuilt llama-cpp-python:$prebuilt"
else
  step "no llama_cpp_python wheel in PIP_FIND_LINKS: pip may compile llama.cpp (minutes; see packaging/README.md)"
fi

started=$(date +%s)
"$PIPX" install --python "$PYTHON" "$WHEEL" || fail "pipx install $(basename "$WHEEL")"
step "pipx install took $(($(date +%s) - started)) s"

EA="$PIPX_BIN_DIR/edgeagent"
[ -x "$EA" ] || fail "pipx did not put an edgeagent executable in $PIPX_BIN_DIR"

# ---- 4. the installed command works -----------------------------------------------------------
out=$("$EA" --version) || fail "edgeagent --version exited non-zero"
echo "$out"
case "$out" in *"$VERSION"*) ;; *) fail "edgeagent --version printed '$out', expected $VERSION" ;; esac

"$EA" --help >/dev/null || fail "edgeagent --help exited non-zero"
VENV_PY="$PIPX_HOME/venvs/edgeagent/bin/python"
"$VENV_PY" - <<'EOF' || fail "edgeagent --help imported llama_cpp or textual (they must load lazily)"
import contextlib, io, sys
sys.argv = ["edgeagent", "--help"]
from edgeagent.cli import main
with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):
    main()
heavy = sorted(m for m in ("llama_cpp", "textual") if m in sys.modules)
sys.exit(f"--help imported {heavy}" if heavy else 0)
EOF

set +e
"$EA" doctor >"$WORK/doctor.txt" 2>&1
rc=$?
set -e
cat "$WORK/doctor.txt"
grep -q 'Traceback' "$WORK/doctor.txt" && fail "edgeagent doctor printed a traceback"
[ "$rc" -eq 0 ] || fail "edgeagent doctor exited $rc (a check failed: see its fix lines above)"

"$EA" doctor --json >"$WORK/doctor.json" || fail "edgeagent doctor --json exited non-zero"
"$VENV_PY" - "$WORK/doctor.json" <<'EOF' || fail "edgeagent doctor --json is not the expected report"
import json, sys
report = json.load(open(sys.argv[1]))
checks = {c["name"]: c for c in report["checks"]}
for name in ("python", "llama-cpp-python", "llama.cpp backend", "energy", "database"):
    assert name in checks, f"missing check {name!r}"
assert checks["llama-cpp-python"]["status"] == "ok", checks["llama-cpp-python"]
EOF

step "pipx install check passed: edgeagent $VERSION installs, runs --version, --help and doctor"
