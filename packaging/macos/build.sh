#!/usr/bin/env bash
# macOS: Lucida.app and Lucida-<version>-macos-<arch>.dmg in dist/, then the installation
# check (--smoke-test) on the app copied out of the mounted .dmg. Runs on a Mac with
# Python 3.11 (CI: .github/workflows/installers.yml, macos-14); it cannot run on Linux.
#
# Optional signing: set MACOS_SIGN_IDENTITY ("Developer ID Application: ...") to sign with
# the hardened runtime instead of ad hoc; notarization is documented in packaging/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3.11}
VENV=${VENV:-build/venv-macos}
PY="$VENV/bin/python"

# 1. A clean build environment with the `package` extra (PyInstaller, the SBOM tools).
[ -x "$PY" ] || "$PYTHON" -m venv "$VENV"
"$PY" -m pip install -q --upgrade pip
"$PY" -m pip install -q -e '.[package]'

# 2. The one-folder build wrapped by BUNDLE (dist/lucida and dist/Lucida.app), then the
#    same packaging tail as Linux (packaging/linux/build_bundle.sh): build_info, SBOM, notices.
rm -rf dist/lucida dist/Lucida.app build/pyinstaller
"$PY" packaging/icons.py build/icons
"$PY" -m PyInstaller --noconfirm --log-level WARN --distpath dist --workpath build/pyinstaller \
  packaging/macos/lucida-macos.spec
"$PY" packaging/bundle/build_info.py dist/lucida/_internal/build_info.json
"$PY" packaging/bundle/sbom.py --collected build/pyinstaller/lucida-macos/collected.json \
  --bundle dist/lucida --out dist/lucida/lucida.cdx.json \
  --notices dist/lucida/THIRD-PARTY-NOTICES.txt
install -m 644 packaging/linux/README.txt dist/lucida/README.txt
"$PY" packaging/macos/app_bundle.py finish dist/Lucida.app dist/lucida

# 3. Sign: files were added after BUNDLE's own ad hoc signature, so seal the bundle again.
if [ -n "${MACOS_SIGN_IDENTITY:-}" ]; then
  codesign --force --deep --options runtime --timestamp \
    --entitlements packaging/macos/entitlements.plist --sign "$MACOS_SIGN_IDENTITY" \
    dist/Lucida.app
else
  codesign --force --deep --sign - dist/Lucida.app
fi
codesign --verify --deep --strict dist/Lucida.app

# 4. The .dmg: the app and a link to /Applications to drag it onto.
version=$("$PY" -c 'import json; print(json.load(open("dist/lucida/_internal/build_info.json"))["version"])')
dmg="dist/Lucida-${version}-macos-$(uname -m).dmg"
stage=$(mktemp -d)
ditto dist/Lucida.app "$stage/Lucida.app"
ln -s /Applications "$stage/Applications"
rm -f "$dmg"
hdiutil create -volname "Lucida ${version}" -srcfolder "$stage" -fs HFS+ -format UDZO \
  -imagekey zlib-level=9 -ov "$dmg"
rm -rf "$stage"

# 5. Install from the .dmg as a person would (copy the app out) and run the check on it.
mnt=$(mktemp -d)
hdiutil attach -nobrowse -readonly -mountpoint "$mnt" "$dmg"
installed=$(mktemp -d)
ditto "$mnt/Lucida.app" "$installed/Lucida.app"
hdiutil detach "$mnt"
"$installed/Lucida.app/Contents/MacOS/lucida" --version
"$installed/Lucida.app/Contents/MacOS/lucida" --smoke-test --smoke-out dist/smoke-macos
echo "macOS: $dmg ($(du -h "$dmg" | cut -f1)), app $(du -sh dist/Lucida.app | cut -f1)"
