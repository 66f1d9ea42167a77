#!/usr/bin/env bash
# Builds the clapdesk desktop app on Linux: a PyInstaller one-folder app in dist/clapdesk/ (the
# icons, theme and desktop entry inside, torch's CPU build, nothing the app does not load), and
# dist/clapdesk-VERSION-ARCH.AppImage from it when appimagetool is installed.
#
#   bash packaging/build.sh            # after bash packaging/install.sh (it runs it if needed)
#   bash packaging/build.sh --smoke    # then opens the built app under Xvfb and uses it
#                                      # (packaging/smoke_window.py; needs install.sh --test)
#   bash packaging/build.sh --newest   # the newest PyInstaller, not packaging/constraints.txt's
#
# Start the app with dist/clapdesk/clapdesk; it runs from that folder alone, anywhere.
# macOS and Windows: see packaging/clapdesk.spec.
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=0
pins=(-c packaging/constraints.txt)
install=(--torch cpu)
for arg in "$@"; do
  case "$arg" in
    --smoke) smoke=1 ;;
    # The newest PyInstaller (and packages, if the venv is made here), not the pinned ones.
    --newest) pins=(); install+=(--newest) ;;
    *) echo "build.sh: unknown option '$arg' (--smoke, --newest)" >&2; exit 2 ;;
  esac
done
say() { echo "build.sh: $*"; }

[ -x .venv/bin/python ] || bash packaging/install.sh "${install[@]}"
if ! .venv/bin/python -c "import sys, torch; sys.exit(1 if torch.version.cuda else 0)"; then
  say "the virtual environment has a CUDA build of torch: bash packaging/install.sh --torch cpu" >&2
  exit 1
fi
.venv/bin/python -m pip install -q "${pins[@]}" "pyinstaller>=6.10"

started=$(date +%s)
.venv/bin/python -m PyInstaller --noconfirm --clean --log-level WARN \
  --distpath dist --workpath build/pyinstaller packaging/clapdesk.spec
say "dist/clapdesk/ built in $(( $(date +%s) - started )) s: $(du -sm dist/clapdesk | cut -f1) MB"

# Every library the bundle's own binaries link to must resolve from the bundle or from what any
# desktop Linux has; a "not found" here is a library the build machine lacked.
unresolved=$(find dist/clapdesk -name '*.so*' -type f -print0 \
  | LD_LIBRARY_PATH=dist/clapdesk/_internal xargs -0 -n 50 ldd 2>/dev/null \
  | grep 'not found' | sort -u || true)
if [ -n "$unresolved" ]; then
  say "libraries the bundle links to but neither it nor this system has:" >&2
  echo "$unresolved" >&2
fi

version=$(.venv/bin/python -c "import clapdesk; print(clapdesk.__version__)")
if command -v appimagetool >/dev/null 2>&1; then
  appdir=build/clapdesk.AppDir
  rm -rf "$appdir" && mkdir -p "$appdir/usr"
  cp -a dist/clapdesk "$appdir/usr/clapdesk"
  cp -a dist/clapdesk/_internal/share "$appdir/usr/share"
  cp packaging/clapdesk.desktop resources/clapdesk.svg "$appdir/"
  cat >"$appdir/AppRun" <<'EOF'
#!/bin/sh
here=$(dirname "$(readlink -f "$0")")
[ $# -eq 0 ] && set -- gui
exec "$here/usr/clapdesk/clapdesk" "$@"
EOF
  chmod +x "$appdir/AppRun"
  ARCH=$(uname -m) appimagetool --no-appstream "$appdir" "dist/clapdesk-$version-$(uname -m).AppImage"
  say "dist/clapdesk-$version-$(uname -m).AppImage"
else
  say "appimagetool is not installed: no AppImage (dist/clapdesk/ is the app)"
fi

if [ "$smoke" = 1 ]; then
  # The bundle reads its Python modules from one archive: allow it a second more than the
  # installed app's 2 s, and print its time.
  .venv/bin/python packaging/smoke_window.py --app dist/clapdesk/clapdesk --max-window-s 3
  echo "bundle smoke: 1 passed, 0 failed"
fi
