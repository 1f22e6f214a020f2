#!/usr/bin/env bash
# Build the sdist and wheel, `twine check` them, install the wheel into a fresh venv (torch first, as the
# Makefile does) and train from a folder outside the repo, with cardio's shipped configs and with the
# REINFORCE example's own. Usage: .ci/wheel.sh (PYTHON= the interpreter with build/twine, TORCH= the pin).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python3}
TORCH=${TORCH:-torch==2.13.0}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# An export of the tracked and not-ignored files (working changes included), so nothing ignored reaches the wheel.
mkdir -p "$WORK/src"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
  if [ -e "$f" ]; then cp --parents "$f" "$WORK/src"; fi
done
"$PYTHON" -m build --no-isolation --outdir "$WORK/dist" "$WORK/src" >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log"; exit 1; }
"$PYTHON" -m twine check --strict "$WORK"/dist/*

"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -q $TORCH
"$WORK/venv/bin/python" -m pip install -q "$WORK"/dist/*.whl

# Outside the repo: the installed command with the shipped configs, then with a user's own agent and config.
mkdir -p "$WORK/user"
cp -r examples/reinforce "$WORK/user/reinforce"
cd "$WORK/user"
"$WORK/venv/bin/cardio" train runner.total_steps=300 runner.schedule.learning_starts=100 runner.eval_episodes=2 \
  hydra.run.dir="$WORK/user/dqn"
test -f "$WORK/user/dqn/monitor.csv" && test -f "$WORK/user/dqn/provenance.json"
cd "$WORK/user/reinforce"
"$WORK/venv/bin/cardio-train" agent=reinforce runner.total_steps=400 runner.schedule.n_steps=200 \
  runner.eval_episodes=2 hydra.run.dir="$WORK/user/reinforce/run"
grep -q "reinforce.ReinforceConfig" "$WORK/user/reinforce/run/config.yaml"
echo "wheel check passed"
