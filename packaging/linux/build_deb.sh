#!/usr/bin/env bash
# The .deb from dist/lucida: /opt/lucida, /usr/bin/lucida, desktop entry, icon, DICOM MIME
# type, Depends derived from the bundle's ELF files (packaging/bundle/deb_depends.py).
#   packaging/linux/build_deb.sh [BUNDLE=dist/lucida] [OUT_DIR=dist]
set -euo pipefail
cd "$(dirname "$0")/../.."
BUNDLE=${1:-dist/lucida}
OUT=${2:-dist}
PY=${PY:-.venv/bin/python}
HERE=packaging/linux
VERSION=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' \
  "$BUNDLE/_internal/build_info.json")
DEB="$OUT/lucida_${VERSION}_amd64.deb"
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/lucida-deb.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
start=$(date +%s)

mkdir -p "$STAGE/opt" "$STAGE/usr/bin" "$STAGE/usr/share/applications" \
  "$STAGE/usr/share/icons/hicolor/scalable/apps" "$STAGE/usr/share/mime/packages" \
  "$STAGE/usr/share/doc/lucida" "$STAGE/DEBIAN"
# Hard links when the stage shares the file system with the bundle: no 900 MB copy.
cp -al "$BUNDLE" "$STAGE/opt/lucida" 2>/dev/null || cp -a "$BUNDLE" "$STAGE/opt/lucida"
ln -s /opt/lucida/lucida "$STAGE/usr/bin/lucida"
install -m 644 "$HERE/lucida.desktop" "$STAGE/usr/share/applications/lucida.desktop"
install -m 644 "$HERE/lucida.svg" "$STAGE/usr/share/icons/hicolor/scalable/apps/lucida.svg"
install -m 644 "$HERE/lucida-mime.xml" "$STAGE/usr/share/mime/packages/lucida.xml"
for f in README.txt THIRD-PARTY-NOTICES.txt lucida.cdx.json; do
  ln -s "/opt/lucida/$f" "$STAGE/usr/share/doc/lucida/$f"
done
install -m 755 "$HERE/postinst" "$HERE/postrm" "$STAGE/DEBIAN/"

DEPENDS=$("$PY" packaging/bundle/deb_depends.py "$BUNDLE")
RECOMMENDS=$("$PY" -c 'import sys; sys.path.insert(0, "packaging/bundle");
import deb_depends; print(", ".join(deb_depends.RECOMMENDS))')
cat > "$STAGE/DEBIAN/control" <<CONTROL
Package: lucida
Version: $VERSION
Architecture: amd64
Maintainer: Lucida developers <lucida@localhost>
Installed-Size: $(du -sk "$STAGE/opt" "$STAGE/usr" | awk '{s += $1} END {print s}')
Depends: $DEPENDS
Recommends: $RECOMMENDS
Section: science
Priority: optional
Description: offline DICOM viewer with local AI assist (not for diagnostic use)
 Lucida views CT and MR studies in 2-D and 3-D and runs bundled AI model packs
 locally, without a network. Research use only; not for diagnostic use.
 The CycloneDX SBOM is /opt/lucida/lucida.cdx.json.
CONTROL
mkdir -p "$OUT"
dpkg-deb --root-owner-group -Zzstd -z10 --threads-max=2 --build "$STAGE" "$DEB" >/dev/null
echo "deb: $DEB, $(du -h "$DEB" | cut -f1), built in $(( $(date +%s) - start )) s"
