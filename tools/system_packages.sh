#!/usr/bin/env bash
# Installs (as root on Debian/Ubuntu) or names the system packages Tessera's GUI and its tests need:
# a virtual X display, Mesa OpenGL, and the X/xcb libraries Qt 6 loads at start-up.
set -euo pipefail
packages=(xvfb xauth libgl1 libgl1-mesa-dri libegl1 libglx-mesa0 libxkbcommon-x11-0 libxkbcommon0
  libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0
  libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxcb-xfixes0 libx11-xcb1 libxrender1 libxi6
  libfontconfig1 libdbus-1-3)
command -v dpkg-query >/dev/null || { echo "Not a Debian-based system: install Xvfb, Mesa GL and Qt's xcb libraries yourself."; exit 0; }
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "Installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "Tessera needs these Debian packages; install them with:"
  echo "  sudo apt-get install ${missing[*]}"
  exit 1
fi
