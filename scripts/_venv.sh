# Sourced by scripts/test and scripts/up: make .venv (or $P419_VENV) and install the package into it.
# Re-installs only when pyproject.toml changed, so repeated runs start fast.
set -euo pipefail
VENV="${P419_VENV:-.venv}"
PYTHON="${PYTHON:-$(command -v python3 || command -v python)}"
if [ ! -d "$VENV" ]; then
  "$PYTHON" -m venv "$VENV"
fi
if [ -x "$VENV/bin/python" ]; then BIN="$VENV/bin"; else BIN="$VENV/Scripts"; fi  # Windows venvs use Scripts/
stamp="$VENV/.p419-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "$BIN/python" -m pip install --quiet --upgrade pip
  "$BIN/python" -m pip install --quiet -e ".[test]"
  touch "$stamp"
fi
export PATH="$PWD/$BIN:$PATH"
