# Sourced by the other scripts: make .venv (once) and install logbridge with the given extras
# into it, again only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="$1"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=".venv/.logbridge-$extras.stamp"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$extras]"
  touch "$stamp"
fi
