#!/usr/bin/env bash
# README screenshots: LIDC-IDRI-0001 at the nodule (lung preset, 1x3 and 2x2 with 3D, a
# diameter measurement) and the demo study, made by `lucida view` under a virtual display.
# Usage: packaging/screenshots.sh [--shared PATH/TO/shared/data] [--out DIR] [--size WxH]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
if [ -n "${DISPLAY:-}" ] && [ -z "${LUCIDA_FORCE_XVFB:-}" ]; then
  exec "$PY" packaging/screenshots.py "$@"
fi
exec xvfb-run -a -s "-screen 0 1920x1080x24" "$PY" packaging/screenshots.py "$@"
