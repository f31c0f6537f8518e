"""The lock files agree with pyproject.toml: every dependency pinned, within its range, with its hashes; the run
lock a part of the test lock at the same versions; and this environment installed from the test lock. A dependency
added or narrowed in pyproject.toml without `make lock` fails here."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import PackageNotFoundError, requires, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
RUN = ROOT / "requirements" / "run.txt"
TEST = ROOT / "requirements" / "test.txt"


def pins(path: Path) -> dict[str, tuple[str, list[str]]]:
    """name → (version, hashes) of a pip-compile'd file."""
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    found: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)(.*)$", line)
        if match:
            name, pinned, rest = match.groups()
            found[canonicalize_name(name)] = (pinned, re.findall(r"--hash=sha256:([0-9a-f]{64})", rest))
    return found


def wanted(*groups: list[str]) -> list[Requirement]:
    requirements = [Requirement(spec) for group in groups for spec in group]
    return [r for r in requirements if r.marker is None or r.marker.evaluate()]


@pytest.mark.parametrize(
    ("lock", "groups"),
    [
        (RUN, ["dependencies"]),
        (TEST, ["dependencies", "test"]),
    ],
)
def test_every_dependency_is_pinned_within_its_range_with_hashes(lock: Path, groups: list[str]) -> None:
    project = PROJECT["project"]
    specs = [project[g] if g == "dependencies" else project["optional-dependencies"][g] for g in groups]
    pinned = pins(lock)
    for requirement in wanted(*specs, PROJECT["build-system"]["requires"]):
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement} is not in {lock.name}: run make lock"
        assert pinned[name][0] in requirement.specifier, f"{lock.name} pins {name} {pinned[name][0]}: {requirement}"
    assert all(hashes for _, hashes in pinned.values()), "a pin without its hashes"


def test_the_run_lock_is_the_test_locks_at_the_same_versions() -> None:
    run, test = pins(RUN), pins(TEST)
    assert {name: v for name, (v, _) in run.items()} == {name: test[name][0] for name in run}


def test_this_environment_was_installed_from_the_test_lock() -> None:
    differ = {}
    for name, (pinned, _) in pins(TEST).items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = None
        if installed != pinned and not (name == "uvloop" and installed is None):
            differ[name] = (pinned, installed)
    assert differ == {}, "installed otherwise than requirements/test.txt: make install"


@pytest.mark.parametrize("python", ["3.11.0", "3.11.2", "3.11.7", "3.11.14"])
@pytest.mark.parametrize("lock", [RUN, TEST])
def test_what_each_pinned_package_needs_on_any_python_3_11_is_pinned_too(lock: Path, python: str) -> None:
    """A package may need another only on some Pythons (redis wants async-timeout before 3.11.3, and Debian 12's is
    3.11.2): every requirement of every pinned package, on each 3.11 release and Linux, is in the lock as well."""
    environment = {
        "python_full_version": python,
        "python_version": "3.11",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "os_name": "posix",
        "extra": "",
    }
    pinned = pins(lock)
    missing = {}
    for name in pinned:
        for spec in requires(name) or []:
            requirement = Requirement(spec)
            if requirement.marker is not None and not requirement.marker.evaluate(environment):
                continue
            if canonicalize_name(requirement.name) not in pinned:
                missing[name] = spec
    assert missing == {}, f"needed on Python {python} but not in {lock.name}: run make lock"
