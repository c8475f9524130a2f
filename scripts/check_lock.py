#!/usr/bin/env python3
"""Check that the running environment is exactly a lock file: the same packages at the same versions.

    python scripts/check_lock.py requirements/captum09.lock

Exits with status 1 and lists the differences otherwise (a package missing from the lock, or installed at
another version, means the lock no longer describes the environment: regenerate it with scripts/lock.sh).
"""

import importlib.metadata
import re
import sys


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main(path: str) -> int:
    locked = {}
    with open(path) as lock:
        for line in lock:
            line = line.strip()
            if line and not line.startswith("#"):
                name, version = line.split("==", 1)
                locked[_normalise(name)] = version
    installed = {}
    for dist in importlib.metadata.distributions():
        name = _normalise(dist.metadata["Name"])
        if name in ("pip", "setuptools", "wheel", "captum-attn-shapley"):
            continue
        installed[name] = dist.version
    problems = [
        f"{name}: installed {installed.get(name)}, locked {version}"
        for name, version in sorted(locked.items())
        if installed.get(name) != version
    ]
    problems += [
        f"{name}: installed {version}, not in the lock"
        for name, version in sorted(installed.items())
        if name not in locked
    ]
    if problems:
        print(f"The environment differs from {path} (regenerate the lock with scripts/lock.sh):", file=sys.stderr)
        print("\n".join(f"  {problem}" for problem in problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
