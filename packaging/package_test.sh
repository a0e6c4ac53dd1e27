#!/usr/bin/env bash
# `make package-test`: the packaged Lucida, end to end, as a user without Python gets it.
#  1. builds the bundle (REUSE_BUNDLE=1 keeps an existing dist/lucida),
#  2. copies it to a temp folder and runs its --smoke-test there under Xvfb, with no network,
#     a fresh HOME and only DISPLAY/PATH/HOME (packaging/bundle/offline_check.py); imports
#     and exports compressed DICOM with it (packaging/bundle/codec_check.py),
#  3. builds the .deb and the .tar.xz into dist/,
#  4. dpkg-deb --info + dpkg -x into a scratch root, checks the tree, runs the installed
#     copy's --smoke-test; unpacks the archive and runs it through its launcher,
#  5. validates the SBOM (CycloneDX schema, every pack's sha256), prints sizes and times.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
CHECK="$PY packaging/bundle/check_install.py"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/lucida-package-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
t0=$(date +%s)
report=()
lap() { local now; now=$(date +%s); report+=("$1: $(( now - ${2} )) s"); }

t=$(date +%s)
if [ "${REUSE_BUNDLE:-0}" = 1 ] && [ -f dist/lucida/_internal/build_info.json ]; then
  echo "== reusing dist/lucida ($(cat dist/lucida/_internal/build_info.json | tr -d '\n '))"
else
  echo "== building the bundle"
  ./packaging/linux/build_bundle.sh
  lap "bundle build" "$t"
fi

echo "== offline smoke test of a copy of dist/lucida"
cp -a dist/lucida "$WORK/lucida"
t=$(date +%s)
"$PY" packaging/bundle/offline_check.py --out "$WORK/offline" -- "$WORK/lucida/lucida" --smoke-test
lap "offline smoke test (under strace)" "$t"
test -s "$WORK/offline/smoke/smoke.png"
# The report must be ok and name a version for every library (a part the bundle lacks
# reads "unavailable").
"$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); bad=[k for k,v in r["versions"].items() if not v or v.startswith("unavailable")]; print("missing versions:", bad) if bad else None; sys.exit(0 if r["ok"] and not bad else 1)' \
  "$WORK/offline/smoke/smoke.json"

echo "== compressed DICOM through the copy (import, export, voxels = the venv app's)"
t=$(date +%s)
"$PY" packaging/bundle/codec_check.py "$WORK/lucida/lucida"
lap "codec check" "$t"

echo "== the copy has every subcommand the venv's lucida has"
diff <("$(dirname "$PY")/lucida" --help) <("$WORK/lucida/lucida" --help)

echo "== .deb and portable archive"
t=$(date +%s)
./packaging/linux/build_deb.sh dist/lucida dist
lap ".deb build" "$t"
t=$(date +%s)
XZ_LEVEL=${XZ_LEVEL:-1} ./packaging/linux/build_archive.sh dist/lucida dist
lap ".tar.xz build" "$t"
VERSION=$("$PY" -c 'import json; print(json.load(open("dist/lucida/_internal/build_info.json"))["version"])')
DEB="dist/lucida_${VERSION}_amd64.deb"
ARCHIVE="dist/lucida-${VERSION}-linux-x86_64.tar.xz"

echo "== the .deb in a scratch root"
dpkg-deb --info "$DEB"
mkdir "$WORK/root"
dpkg -x "$DEB" "$WORK/root"
$CHECK deb-root "$WORK/root" "$DEB"
t=$(date +%s)
xvfb-run -a -s "-screen 0 1280x1024x24 -ac" sh -c 'exec env -i DISPLAY="$DISPLAY" \
  PATH=/usr/local/bin:/usr/bin:/bin HOME="$1" "$2" --smoke-test --smoke-out "$3"' \
  sh "$(mkdir -p "$WORK/home2" && echo "$WORK/home2")" "$WORK/root/opt/lucida/lucida" \
  "$WORK/installed-smoke"
lap "installed copy's smoke test" "$t"

echo "== the archive through its launcher"
mkdir "$WORK/archive"
tar -C "$WORK/archive" -xJf "$ARCHIVE"
"$WORK/archive/lucida-$VERSION/lucida" --version | tee "$WORK/archive-version.txt"
grep -q "build" "$WORK/archive-version.txt"

echo "== SBOM"
$CHECK sbom dist/lucida

echo "== summary"
printf '  %s\n' "${report[@]}"
echo "  bundle: $(du -sh dist/lucida | cut -f1) installed ($(du -sh --apparent-size dist/lucida | cut -f1) apparent)"
echo "  .deb:   $(du -h "$DEB" | cut -f1)  $DEB"
echo "  .tar.xz: $(du -h "$ARCHIVE" | cut -f1)  $ARCHIVE"
echo "  smoke steps (installed copy): $("$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); print(", ".join(s["step"] + " " + format(s["seconds"], ".1f") + " s" for s in r["steps"]))' "$WORK/installed-smoke/smoke.json")"
echo "package-test passed in $(( $(date +%s) - t0 )) s"
