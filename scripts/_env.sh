# SPDX-License-Identifier: Apache-2.0
# Shared by scripts/up and scripts/test: a project virtualenv with msgin5g installed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MSGIN5G_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"

ensure_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
  fi
  # dependency groups need pip >= 25.1
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "pip>=25.1"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[all]" "$@"
}
