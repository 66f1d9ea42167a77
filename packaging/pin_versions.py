"""Write packaging/constraints.txt: the exact release of every package the install resolved.

install.sh and build.sh install through that file, so a clone installs, tests and bundles the
releases its suite last passed with. Without it a fresh install takes the newest release of
everything, and one upstream release can break the app or the bundle on a commit that changed
nothing (transformers 5.25 began to depend on `kernels`, whose data files the bundle then
lacked).

Refresh the pins when moving to newer releases, then run the suite and the bundle's smoke test:

    bash packaging/install.sh --test --newest && bash packaging/build.sh --newest
    .venv/bin/python packaging/pin_versions.py
    .venv/bin/python -m pytest && bash packaging/build.sh --smoke

A pin applies only on the Pythons its release supports (its Requires-Python, as a marker), so an
older or newer Python than the one that resolved the pins resolves that package freely rather
than failing. torch is left out: install.sh chooses its build (CPU or CUDA) and its version.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

CONSTRAINTS = Path(__file__).resolve().parent / "constraints.txt"
# Chosen elsewhere: torch (and what only a CUDA build brings) by install.sh, clapdesk is the
# clone itself, and pip's own tools by the virtual environment.
NOT_PINNED = re.compile(r"^(torch|triton|nvidia-.*|cuda-.*|clapdesk|pip|setuptools|wheel)$")
HEADER = """\
# The releases clapdesk's suite and bundle last passed with: install.sh and build.sh install
# through this file (pip -c). Written by packaging/pin_versions.py; see there to refresh it.
"""


def python_marker(requires_python: str | None) -> str:
    """A release's Requires-Python as an environment marker ("" for any Python)."""
    if not requires_python or not requires_python.strip():
        return ""
    specifiers = sorted(SpecifierSet(requires_python), key=str)
    return " and ".join(f'python_full_version {s.operator} "{s.version}"' for s in specifiers)


def pin_lines(distributions: Iterable[metadata.Distribution]) -> list[str]:
    """One `name==version[ ; marker]` line per distribution, sorted, without the unpinned."""
    pins: dict[str, str] = {}
    for dist in distributions:
        name = dist.metadata["Name"]
        if not name or NOT_PINNED.match(canonicalize_name(name)):
            continue
        name = canonicalize_name(name)
        marker = python_marker(dist.metadata.get("Requires-Python"))
        pins[name] = f"{name}=={dist.version}" + (f" ; {marker}" if marker else "")
    return [pins[name] for name in sorted(pins)]


def read_pins(path: Path = CONSTRAINTS) -> dict[str, Requirement]:
    """The constraints file as requirements, by canonical name."""
    pins: dict[str, Requirement] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            pins[canonicalize_name(requirement.name)] = requirement
    return pins


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=CONSTRAINTS)
    args = parser.parse_args(argv)
    lines = pin_lines(metadata.distributions())
    args.out.write_text(HEADER + "".join(f"{line}\n" for line in lines))
    print(f"pin_versions: {len(lines)} releases written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
