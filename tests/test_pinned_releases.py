"""The pinned releases: every dependency pinned within its own range, and a pinned install held
to them. A fresh install otherwise takes the newest release of everything, and one upstream
release can break the suite or the bundle on a commit that changed nothing."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest brings tomli
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "packaging" / "constraints.txt"


def _pin_versions():
    spec = importlib.util.spec_from_file_location(
        "pin_versions", ROOT / "packaging" / "pin_versions.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pin_versions = _pin_versions()


def _what_the_install_asks_for() -> list[Requirement]:
    """clapdesk's own requirements, the extras install.sh --test adds, and build.sh's PyInstaller."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in ("test", "cluster"):
        wanted += project["optional-dependencies"][extra]
    build = (ROOT / "packaging" / "build.sh").read_text()
    wanted += re.findall(r'"(pyinstaller[^"]*)"', build)
    return [Requirement(line) for line in wanted]


def test_every_release_the_install_asks_for_is_pinned_within_its_range() -> None:
    pins = pin_versions.read_pins()
    here = {"python_full_version": "3.11.7", "python_version": "3.11"}
    asked = _what_the_install_asks_for()
    assert len(asked) > 20
    for requirement in asked:
        name = canonicalize_name(requirement.name)
        if name == "torch":  # install.sh chooses torch's build and version itself
            assert name not in pins
            continue
        assert name in pins, f"{requirement} has no pin in packaging/constraints.txt"
        pin = pins[name]
        (exact,) = list(pin.specifier)
        assert exact.operator == "=="
        assert requirement.specifier.contains(exact.version, prereleases=True), (
            f"the pin {pin} is outside clapdesk's own range {requirement}")
        # Every pin applies on the Python the suite runs on in CI.
        assert pin.marker is None or pin.marker.evaluate(here), pin


def test_a_pin_applies_only_on_the_pythons_its_release_supports(tmp_path: Path) -> None:
    def dist(name: str, version: str, requires_python: str | None) -> metadata.Distribution:
        info = tmp_path / f"{name}-{version}.dist-info"
        info.mkdir()
        lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
        if requires_python:
            lines.append(f"Requires-Python: {requires_python}")
        (info / "METADATA").write_text("\n".join(lines) + "\n")
        return metadata.PathDistribution(info)

    lines = pin_versions.pin_lines([
        dist("NumPy", "2.4.6", ">=3.11"),
        dist("PySide6_Essentials", "6.11.3", "<3.15,>=3.10"),
        dist("hnswlib", "0.8.0", None),
        dist("torch", "2.13.0+cpu", ">=3.10"),
        dist("nvidia-cublas", "13.1.0", ">=3"),
        dist("clapdesk", "0.9.0", ">=3.10"),
    ])
    assert lines == [
        "hnswlib==0.8.0",
        'numpy==2.4.6 ; python_full_version >= "3.11"',
        'pyside6-essentials==6.11.3 ; python_full_version < "3.15"'
        ' and python_full_version >= "3.10"',
    ]
    numpy_pin, pyside_pin = Requirement(lines[1]), Requirement(lines[2])
    assert numpy_pin.marker is not None and pyside_pin.marker is not None
    assert not numpy_pin.marker.evaluate({"python_full_version": "3.10.12"})
    assert numpy_pin.marker.evaluate({"python_full_version": "3.13.1"})
    assert not pyside_pin.marker.evaluate({"python_full_version": "3.15.0"})
    # Read back as install.sh's pip reads it.
    out = tmp_path / "constraints.txt"
    out.write_text(pin_versions.HEADER + "".join(f"{line}\n" for line in lines))
    assert sorted(pin_versions.read_pins(out)) == ["hnswlib", "numpy", "pyside6-essentials"]


def test_a_pinned_install_holds_every_package_at_its_pin() -> None:
    """install.sh records in the venv what it installed from; a venv made by `install.sh` (CI's)
    must then have every pinned package it holds at exactly the pinned release."""
    record = Path(sys.prefix) / "clapdesk-pins"
    if not record.exists():
        pytest.skip("this environment was not made by packaging/install.sh")
    made_from = record.read_text().split()
    if made_from == ["newest"]:
        pytest.skip("installed with install.sh --newest: the newest releases, not the pins")
    digest = hashlib.sha256(CONSTRAINTS.read_bytes()).hexdigest()[:16]
    assert made_from == ["pinned", digest], (
        "packaging/constraints.txt changed since this venv was installed: run install.sh again")
    here = {"python_full_version": ".".join(map(str, sys.version_info[:3]))}
    off_pin = []
    for name, pin in pin_versions.read_pins().items():
        if pin.marker is not None and not pin.marker.evaluate(here):
            continue
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # pinned for another part (PyInstaller, for the bundle only)
        if not pin.specifier.contains(have, prereleases=True):
            off_pin.append(f"{name} {have} (pinned {pin.specifier})")
    assert not off_pin, off_pin
