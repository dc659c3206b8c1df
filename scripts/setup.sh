#!/usr/bin/env bash
# Set up everything on a fresh machine with Python 3.11: a virtual environment in
# .venv holding torch, this package and its test/Jupyter extras.
# --browser also installs Debian's chromium (for the browser test of the widgets, and for
# plotly figures saved as PNG/SVG/PDF: kaleido, in the extras, drives it).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3.11}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/pip install --quiet torch==2.14.1 torchvision==0.29.1 -e '.[test]'
if [ "${1:-}" = "--browser" ] && ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi
  $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium >/dev/null
fi
.venv/bin/python -c "import blindspots_nb, torch, voila; print('blindspots_nb', blindspots_nb.__version__, '| torch', torch.__version__, '| voila', voila.__version__)"
