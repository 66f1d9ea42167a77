#!/usr/bin/env bash
# Sets clapdesk up on a fresh Debian/Ubuntu machine: system libraries, a virtual environment in
# .venv, torch (CPU build) first so pip never pulls a multi-GB CUDA build, then clapdesk itself.
#   bash packaging/install.sh          # the app
#   bash packaging/install.sh --test   # the app and everything its test suite needs
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=0
[ "${1:-}" = "--test" ] && with_tests=1

# PortAudio for audition; the rest are what Qt's xcb/offscreen platforms load at run time.
apt_packages=(libportaudio2 libasound2 libsndfile1 libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0
              libfontconfig1 libdbus-1-3 libglib2.0-0)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  echo "clapdesk: installing system libraries: ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
if [ "$with_tests" = 1 ]; then
  .venv/bin/python -m pip install -q -e ".[test]"
else
  .venv/bin/python -m pip install -q -e .
fi
echo "clapdesk: installed in $(pwd)/.venv"
