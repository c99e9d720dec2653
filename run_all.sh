#!/usr/bin/env bash
# The two commands of the README:
#   ./run_all.sh [--profile smoke|quick|paper] [--scenes ...] [--models ...]   regenerate every figure and table
#   ./run_all.sh test [pytest args]                                          run the tests (pytest + nbval)
# Uses the active virtualenv/conda env if one is active, else creates ./.venv on first use.
# HUD_TORCH: pip requirement used when torch is missing (default torch==2.13.0, the CPU build on these machines).
set -euo pipefail
cd "$(dirname "$0")"

if [[ -n "${VIRTUAL_ENV:-}" || -n "${CONDA_PREFIX:-}" ]]; then
  PY=python
else
  if [[ ! -x .venv/bin/python ]]; then
    echo "[setup] creating .venv"
    python3 -m venv .venv
  fi
  PY=.venv/bin/python
fi

if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  echo "[setup] installing ${HUD_TORCH:-torch==2.13.0}"
  "$PY" -m pip install --quiet --disable-pip-version-check "${HUD_TORCH:-torch==2.13.0}"
fi
stamp=".venv_hud_installed"
[[ "$PY" == "python" ]] && stamp="${VIRTUAL_ENV:-$CONDA_PREFIX}/.hud_installed"
if [[ ! -f "$stamp" || pyproject.toml -nt "$stamp" ]] || ! "$PY" -c "import hudlib, papermill, nbval" >/dev/null 2>&1; then
  echo "[setup] installing hudlib and its dependencies"
  "$PY" -m pip install --quiet --disable-pip-version-check -e '.[dev]'
  touch "$stamp"
fi

if [[ "${1:-}" == "test" ]]; then
  shift
  exec "$PY" -m pytest tests --nbval-lax notebooks "$@"
fi
exec "$PY" -m hudlib.runner "$@"
