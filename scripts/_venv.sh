# Sourced by the other scripts: make .venv (once) and install logbridge with the given extras
# into it, again only when pyproject.toml, setup.py or the compiled capture's source changed
# (an editable install compiles src/logbridge/_speedups.c once, into src/logbridge/).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="$1"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=".venv/.logbridge-$extras.stamp"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ] ||
  [ src/logbridge/_speedups.c -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$extras]"
  if .venv/bin/python -c "import logbridge._speedups" 2>/dev/null; then
    touch "$stamp"
  else
    # An optional build failure is quiet in pip; say it, and try again next time.
    echo "logbridge: the compiled capture did not build (a C compiler and Python's headers" \
      "are needed); logbridge runs its Python capture" >&2
  fi
fi
