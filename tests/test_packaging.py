"""What a producer installs: one version everywhere, the window's libraries, the real window.

The real-window test starts this environment's `clapdesk` binary on Xvfb with Qt's xcb platform
(not offscreen) and drives it with real key events (packaging/smoke_window.py); CI gets Xvfb and
xdotool from `bash packaging/install.sh --test`.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from importlib.metadata import version as installed_version
from pathlib import Path

import clapdesk

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
METAINFO = ROOT / "packaging" / "io.github.clapdesk.metainfo.xml"


def test_one_version_number_everywhere() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^dynamic = \["version"\]', pyproject, re.M)
    assert not re.search(r"^version = ", pyproject.split("[tool.setuptools.dynamic]")[0], re.M)
    assert 'version = { attr = "clapdesk.__version__" }' in pyproject
    assert installed_version("clapdesk") == clapdesk.__version__
    releases = ET.parse(METAINFO).getroot().find("releases")
    assert releases is not None
    assert releases[0].get("version") == clapdesk.__version__, "newest AppStream release"
    spec = (ROOT / "packaging" / "clapdesk.spec").read_text()
    assert '"clapdesk" / "__init__.py"' in spec  # read from there,
    assert not re.search(r"\d+\.\d+\.\d+", spec)  # never written down
    done = subprocess.run([str(BIN / "clapdesk"), "--version"], capture_output=True, text=True)
    assert done.stdout.strip() == f"clapdesk {clapdesk.__version__}"
    about = (ROOT / "clapdesk" / "gui" / "commands.py").read_text()
    assert re.search(r"from clapdesk import __version__", about)


def test_desktop_entry_and_appstream_name_the_same_app() -> None:
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # type: ignore[assignment, method-assign]
    entry.read(ROOT / "packaging" / "clapdesk.desktop")
    desktop = entry["Desktop Entry"]
    assert desktop["Type"] == "Application" and desktop["Icon"] == "clapdesk"
    assert desktop["Exec"].split()[0] == "clapdesk"
    root = ET.parse(METAINFO).getroot()
    assert root.findtext("launchable") == "clapdesk.desktop"
    assert root.findtext("provides/binary") == desktop["Exec"].split()[0]
    assert (ROOT / "resources" / f"{desktop['Icon']}.svg").exists()


def test_install_script_refuses_an_unknown_torch_build() -> None:
    done = subprocess.run(["bash", str(ROOT / "packaging" / "install.sh"), "--torch", "rocm"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "--torch takes cpu, cuda or auto, not 'rocm'" in done.stderr


def _wheel(folder: Path, name: str, version: str, requires: list[str]) -> Path:
    """A metadata-only wheel: all pip's resolver reads in a dry run."""
    import zipfile

    info = f"{name}-{version}.dist-info"
    path = folder / f"{name}-{version}-py3-none-any.whl"
    metadata = (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                + "".join(f"Requires-Dist: {r}\n" for r in requires))
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{info}/METADATA", metadata)
        wheel.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\n"
                                        "Root-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{info}/RECORD", "")
    return path


def test_install_script_tells_the_torch_build_apart_with_torch_already_installed(tmp_path) -> None:
    """A second run of the install finds torch in the venv. pip's dry run then reports nothing to
    install, and the probe used to fail with a traceback, so the install warned of a CUDA-only
    index. Served from a local folder (--no-index): no traffic leaves the machine."""
    import torch

    script = (ROOT / "packaging" / "install.sh").read_text()
    probe = re.search(r"^torch_build_of\(\) \{\n.*?^\}\n", script, re.M | re.S)
    assert probe is not None
    installed = torch.__version__
    public = installed.split("+")[0]
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels, "torch", installed, ["filelock"])
    program = (f"pip=({sys.executable} -m pip)\n{probe.group(0)}\n"
               f"torch_build_of --no-index --find-links {wheels} 'torch=={public}'")
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PIP_FIND_LINKS": "", "PIP_CONSTRAINT": ""})
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["cpu", installed]
    # A CUDA build is told by what it depends on, installed or not.
    (wheels / f"torch-{installed}-py3-none-any.whl").unlink()
    _wheel(wheels, "torch", f"{public}+cu130", ["nvidia-cublas"])
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PIP_FIND_LINKS": "", "PIP_CONSTRAINT": ""})
    assert done.stdout.split() == ["cuda", f"{public}+cu130"], done.stderr


def test_qt_xcb_plugin_finds_every_library() -> None:
    import PySide6

    plugin = Path(PySide6.__file__).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    done = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, check=True)
    assert "not found" not in done.stdout, done.stdout
    if shutil.which("dpkg"):
        assert subprocess.run(["dpkg", "-s", "libxcb-cursor0"], capture_output=True).returncode == 0


def test_real_window_opens_searches_plays_and_quits(tmp_path: Path) -> None:
    shot = tmp_path / "window.png"
    done = subprocess.run([sys.executable, str(ROOT / "packaging" / "smoke_window.py"),
                           "--app", str(BIN / "clapdesk"), "--screenshot", str(shot)],
                          capture_output=True, text=True, timeout=600)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 0, report.get("failed", done.stderr[-3000:])
    assert report["window_s"] <= 2.0
    assert report["search_played"] and report["similar_played"]
    assert shot.stat().st_size > 10_000 and report["screenshot"]["colours"] >= 20
