#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages Lucida needs (Qt 6 xcb + GL for VTK, Xvfb for
# headless tests, dicom3tools for DICOM validation, pixelmed-apps (brings Java) for
# the SR template validator) when any is missing.
# Safe to run repeatedly; does nothing on other systems.
set -euo pipefail
command -v dpkg >/dev/null 2>&1 || exit 0
# libglib2.0-0: Qt 6 core links GLib (a minimal Debian image lacks it).
PKGS=(python3-venv xvfb xauth libglib2.0-0 libgl1 libegl1 libglx-mesa0 libgl1-mesa-dri libfontconfig1
      libdbus-1-3 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0
      libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0
      libxcb-xkb1 fonts-dejavu-core dicom3tools pixelmed-apps
      # orthanc (+ its DICOMweb plugin): the real PACS the net/ tests talk to;
      # dcmtk: getscu, the reference in bench/retrieve.py.
      orthanc orthanc-dicomweb dcmtk
      # make package-test: strace (offline check), binutils (objdump: the .deb's Depends),
      # xz-utils (portable archive), desktop-file-utils (desktop entry validation).
      strace binutils xz-utils desktop-file-utils)
missing=()
for p in "${PKGS[@]}"; do
  # Ubuntu 24.04 renamed some libraries with a t64 suffix (64-bit time_t); either will do.
  for name in "$p" "${p}t64"; do
    dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q "install ok installed" && continue 2
  done
  missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "Installing system packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
