"""Third-party programs the suite drives, and the Debian package that provides each one.

The list lives in `scripts/system-packages.txt` (read by `scripts/install-system-packages` too), so a missing program
fails its test with the package's name and the command that installs it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

PACKAGE_LIST = Path(__file__).resolve().parent.parent / "scripts" / "system-packages.txt"


def system_packages() -> dict[str, list[str]]:
    """Package name -> the programs it provides, as `scripts/system-packages.txt` lists them."""
    packages: dict[str, list[str]] = {}
    for line in PACKAGE_LIST.read_text(encoding="utf-8").splitlines():
        fields = line.split("#", 1)[0].split()
        if fields:
            packages[fields[0]] = fields[1:]
    return packages


def require_program(program: str) -> str:
    """The path of `program`, or a test failure that says which package to install and how."""
    path = shutil.which(program)
    if path:
        return path
    package = next((name for name, programs in system_packages().items() if program in programs),
                   None)
    assert package, f"{program} is not in {PACKAGE_LIST.name}; add the package that provides it"
    raise AssertionError(f"{program} is missing: install the Debian package {package} "
                         f"(sudo apt-get install {package}), or run scripts/install-system-packages, which "
                         f"installs every package in scripts/system-packages.txt")
