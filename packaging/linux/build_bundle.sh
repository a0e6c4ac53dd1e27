#!/usr/bin/env bash
# `make package`: the PyInstaller one-folder bundle in dist/lucida, with build_info.json,
# the CycloneDX SBOM, THIRD-PARTY-NOTICES.txt and the research-use README.
# Needs the `package` extra in the venv (the Makefile installs it).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
DIST=dist/lucida
start=$(date +%s)
rm -rf "$DIST" build/pyinstaller
"$PY" -m PyInstaller --noconfirm --log-level WARN --distpath dist --workpath build/pyinstaller \
  packaging/lucida.spec
# VTK's wheels and this CPython build carry full symbol tables (VTK 313 -> 235 MB,
# libpython 23 -> 6 MB): strip those only. Stripping numpy's or scipy's bundled OpenBLAS
# breaks it; Qt, onnxruntime and SimpleITK ship stripped already.
find "$DIST/_internal/vtkmodules" "$DIST/_internal"/python3.*/lib-dynload \
  "$DIST/_internal"/libpython3.* -name '*.so*' -type f -exec strip --strip-unneeded {} +
"$PY" packaging/bundle/build_info.py "$DIST/_internal/build_info.json"
"$PY" packaging/bundle/sbom.py --collected build/pyinstaller/lucida/collected.json \
  --bundle "$DIST" --out "$DIST/lucida.cdx.json" --notices "$DIST/THIRD-PARTY-NOTICES.txt"
install -m 644 packaging/linux/README.txt "$DIST/README.txt"
echo "bundle: $DIST, $(du -sh "$DIST" | cut -f1), built in $(( $(date +%s) - start )) s"
