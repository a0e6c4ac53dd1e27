#!/usr/bin/env bash
# The portable archive lucida-<version>-linux-x86_64.tar.xz: lucida-<version>/lucida (the
# launcher) and lucida-<version>/lucida-app/ (the bundle). AppImage is not used:
# appimagetool comes from neither Debian nor PyPI.
#   packaging/linux/build_archive.sh [BUNDLE=dist/lucida] [OUT_DIR=dist]
set -euo pipefail
cd "$(dirname "$0")/../.."
BUNDLE=${1:-dist/lucida}
OUT=${2:-dist}
PY=${PY:-.venv/bin/python}
VERSION=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' \
  "$BUNDLE/_internal/build_info.json")
NAME="lucida-$VERSION"
ARCHIVE="$OUT/$NAME-linux-x86_64.tar.xz"
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/lucida-tar.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
start=$(date +%s)
mkdir -p "$STAGE/$NAME"
cp -al "$BUNDLE" "$STAGE/$NAME/lucida-app" 2>/dev/null || cp -a "$BUNDLE" "$STAGE/$NAME/lucida-app"
install -m 755 packaging/linux/lucida-launcher.sh "$STAGE/$NAME/lucida"
install -m 644 packaging/linux/README.txt "$STAGE/$NAME/README.txt"
mkdir -p "$OUT"
tar -C "$STAGE" --owner=0 --group=0 --numeric-owner -cf - "$NAME" | xz -T2 "-${XZ_LEVEL:-6}" > "$ARCHIVE"
echo "archive: $ARCHIVE, $(du -h "$ARCHIVE" | cut -f1), built in $(( $(date +%s) - start )) s"
