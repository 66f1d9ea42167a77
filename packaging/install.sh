#!/usr/bin/env bash
# Sets clapdesk up on a Debian or Ubuntu machine, from a clone: the system libraries the window
# and audition need, a virtual environment in .venv, the right torch build, then clapdesk.
#
#   bash packaging/install.sh                 # the app
#   bash packaging/install.sh --test          # the app, its test suite, and Xvfb for the window test
#   bash packaging/install.sh --torch cpu     # torch build: cpu, cuda or auto (the default)
#   bash packaging/install.sh --newest        # the newest releases, not packaging/constraints.txt
#
# Every package but torch is installed at the release pinned in packaging/constraints.txt (the
# ones the suite and the bundle last passed with); packaging/pin_versions.py refreshes the pins.
#
# --torch auto picks the CUDA build when an NVIDIA driver is loaded (nvidia-smi or
# /proc/driver/nvidia), otherwise the CPU build. What the configured package index would give is
# asked first (pip --dry-run); only when that is a CUDA build and a CPU one is wanted is the CPU
# index of the torch project tried (it needs a network connection); if that fails too, the
# default build is installed with a warning (it runs on a CPU, it is just much larger).
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=${CLAPDESK_TORCH_VERSION:-2.13.0}
TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu

with_tests=0
newest=0
torch_choice=auto
while [ $# -gt 0 ]; do
  case "$1" in
    --test) with_tests=1 ;;
    --newest) newest=1 ;;
    --torch) torch_choice=${2:-}; shift ;;
    --torch=*) torch_choice=${1#--torch=} ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$torch_choice" in
  cpu|cuda|auto) ;;
  *) echo "install.sh: --torch takes cpu, cuda or auto, not '$torch_choice'" >&2; exit 2 ;;
esac

say() { echo "clapdesk: $*"; }

# -- system libraries ---------------------------------------------------------------------------
# What Qt 6's platform plugins load: xcb (X11, libxcb-cursor0 included) and Wayland, plus EGL/GL,
# fonts and D-Bus; PortAudio and ALSA for audition. "a|b" means either name: Debian 13 and
# Ubuntu 24.04 renamed some libraries (the 64-bit time_t transition).
apt_packages=(
  libx11-6 libx11-xcb1 libxcb1 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
  libxcb-randr0 libxcb-render0 libxcb-render-util0 libxcb-shape0 libxcb-shm0 libxcb-sync1
  libxcb-xfixes0 libxcb-xinerama0 libxcb-xkb1 libxkbcommon0 libxkbcommon-x11-0 libsm6 libice6
  libwayland-client0 libwayland-cursor0 libwayland-egl1
  libegl1 libgl1 libopengl0 libfontconfig1 libfreetype6 fonts-dejavu-core libdbus-1-3
  "libglib2.0-0t64|libglib2.0-0"
  libportaudio2 "libasound2t64|libasound2" libsndfile1
)
# The real-window test: a virtual X server, and xdotool to type into the window as a user would.
[ "$with_tests" = 1 ] && apt_packages+=(xvfb xauth xdotool)
# The Ableton Link test: `ip` brings up loopback (with multicast) in the network namespace it
# makes, so no Link packet leaves the machine; `unshare` is in util-linux.
[ "$with_tests" = 1 ] && apt_packages+=(iproute2 util-linux)
python=${PYTHON:-python3}
# Debian's python3 makes virtual environments only with python3-venv.
[ -x .venv/bin/python ] || "$python" -c "import ensurepip" 2>/dev/null || apt_packages+=(python3-venv)
sudo_cmd=()
[ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)

installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }
available() {  # a candidate version in the apt sources (not "(none)")
  local policy
  policy=$(apt-cache policy "$1" 2>/dev/null)
  [[ $policy == *"Candidate: "[0-9]* ]]
}

missing=()
for entry in "${apt_packages[@]}"; do
  have=0
  IFS='|' read -r -a names <<<"$entry"
  for name in "${names[@]}"; do installed "$name" && have=1; done
  [ "$have" = 1 ] || missing+=("$entry")
done
if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    say "not a Debian/Ubuntu system: install these libraries yourself: ${missing[*]}" >&2
  else
    "${sudo_cmd[@]}" apt-get update -qq
    to_install=()
    for entry in "${missing[@]}"; do
      IFS='|' read -r -a names <<<"$entry"
      chosen=""
      for name in "${names[@]}"; do
        if available "$name"; then chosen=$name; break; fi
      done
      if [ -z "$chosen" ]; then
        say "no package $entry in this system's apt sources" >&2; exit 1
      fi
      to_install+=("$chosen")
    done
    say "installing system libraries: ${to_install[*]}"
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
      "${to_install[@]}" >/dev/null
  fi
else
  say "system libraries: all present"
fi

# -- the virtual environment --------------------------------------------------------------------
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip)
"${pip[@]}" install -q --upgrade pip

# -- torch --------------------------------------------------------------------------------------
gpu_seen() { command -v nvidia-smi >/dev/null 2>&1 || [ -e /proc/driver/nvidia/version ]; }
if [ "$torch_choice" = auto ]; then
  if gpu_seen; then torch_choice=cuda; why="an NVIDIA driver is loaded"
  else torch_choice=cpu; why="no NVIDIA driver found"; fi
  say "torch: the $torch_choice build ($why; --torch cpu|cuda overrides)"
fi

# Prints "cuda VERSION" or "cpu VERSION" for what pip would install for a requirement; a
# CUDA build depends on NVIDIA's packages or carries "+cu" in its version. --ignore-installed:
# on a second run torch is already in the venv, and pip's report would list nothing to install.
torch_build_of() {
  local report status
  report=$(mktemp)
  if ! "${pip[@]}" install --dry-run --no-deps --ignore-installed -q --report "$report" "$@" >/dev/null 2>&1; then
    rm -f "$report"; return 1
  fi
  "${pip[0]}" - "$report" <<'EOF'
import json, sys
chosen = json.load(open(sys.argv[1]))["install"]
if not chosen:
    sys.exit(1)
item = chosen[0]["metadata"]
needs = " ".join(item.get("requires_dist") or [])
cuda = "+cu" in item["version"] or "nvidia-" in needs
print("cuda" if cuda else "cpu", item["version"])
EOF
  status=$?
  rm -f "$report"
  return $status
}

installed_torch=$(.venv/bin/python -c "import torch; print(torch.__version__)" 2>/dev/null || true)
torch_args=()
if [ "$torch_choice" = cpu ]; then
  if default=$(torch_build_of "torch==$TORCH_VERSION") && [ "${default%% *}" = cpu ]; then
    torch_args=("torch==${default#* }")
  else
    say "torch: the configured package index serves a CUDA build; trying the CPU index"
    say "       $TORCH_CPU_INDEX"
    if cpu=$(torch_build_of --index-url "$TORCH_CPU_INDEX" --timeout 20 --retries 1 \
             "torch==$TORCH_VERSION") && [ "${cpu%% *}" = cpu ]; then
      torch_args=(--index-url "$TORCH_CPU_INDEX" "torch==${cpu#* }")
    else
      say "torch: WARNING: no CPU build could be reached; installing the default build" >&2
      say "       (it runs on a CPU too, but takes several GB)" >&2
      torch_args=("torch==$TORCH_VERSION")
    fi
  fi
else
  # "===" asks for the public release exactly, past a local "+cpu" build the index may prefer.
  if build=$(torch_build_of "torch==$TORCH_VERSION") && [ "${build%% *}" = cuda ]; then
    torch_args=("torch==${build#* }")
  elif build=$(torch_build_of "torch===$TORCH_VERSION") && [ "${build%% *}" = cuda ]; then
    torch_args=("torch===$TORCH_VERSION")
  else
    say "torch: WARNING: the configured package index has no CUDA build of torch $TORCH_VERSION;" >&2
    say "       installing the CPU build" >&2
    torch_args=("torch==$TORCH_VERSION")
  fi
fi
wanted=${torch_args[-1]#torch==}
wanted=${wanted#torch===}
if [ "$installed_torch" = "$wanted" ]; then
  say "torch: $installed_torch already installed"
else
  say "torch: installing ${torch_args[*]}"
  "${pip[@]}" install -q "${torch_args[@]}"
fi

# -- clapdesk -----------------------------------------------------------------------------------
pins=(-c packaging/constraints.txt)
pinned="pinned $(sha256sum packaging/constraints.txt | cut -c1-16)"
if [ "$newest" = 1 ]; then pins=(); pinned=newest; fi
project=.
# The cluster extra too: its tests run a real local Ray.
[ "$with_tests" = 1 ] && project=".[test,cluster]"
if ! "${pip[@]}" install -q "${pins[@]}" -e "$project"; then
  if [ "$newest" = 0 ]; then
    say "the pinned releases (packaging/constraints.txt) did not install with $(.venv/bin/python -V);" >&2
    say "       bash packaging/install.sh --newest takes the newest instead" >&2
  fi
  exit 1
fi
# What the venv was installed from: tests/test_pinned_releases.py holds a pinned venv to the pins.
echo "$pinned" > .venv/clapdesk-pins
# An editable install leaves clapdesk's own modules uncompiled (pip compiles only what it copies),
# and where PYTHONDONTWRITEBYTECODE is set every start would compile them again: about 0.2 s of
# the window's first appearance. Compiled once here, as pip does for every other package.
.venv/bin/python -m compileall -q clapdesk >/dev/null

# -- checks: the window's libraries, and what torch was installed -------------------------------
qt=$(.venv/bin/python -c "import PySide6, os; print(os.path.dirname(PySide6.__file__))")
unresolved=$(for lib in "$qt"/Qt/plugins/platforms/libqxcb.so "$qt"/Qt/plugins/platforms/libqwayland*.so \
                        "$qt"/Qt/lib/libQt6XcbQpa.so.6 "$qt"/Qt/lib/libQt6WaylandClient.so.6; do
               [ -e "$lib" ] && ldd "$lib" | grep 'not found'
             done | sort -u || true)
if [ -n "$unresolved" ]; then
  say "the window cannot open: Qt's platform plugins miss these libraries:" >&2
  echo "$unresolved" >&2
  exit 1
fi
.venv/bin/python - <<'EOF'
import torch
cuda = torch.version.cuda
print(f"clapdesk: torch {torch.__version__}: "
      + (f"CUDA {cuda} build, GPU usable: {'yes' if torch.cuda.is_available() else 'no'}"
         if cuda else "CPU build"))
EOF
say "installed in $(pwd)/.venv; start it with .venv/bin/clapdesk"
