"""Packaging: pyproject.toml names every dependency, constraints.txt pins each one, and make installs both."""

from __future__ import annotations

import inspect
import re
import tomllib

from hematovision.core import paths

ROOT = paths.PROJECT_ROOT
NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> dict[str, list[str]]:
    """The package names pyproject.toml asks for: the app's, then each extra's."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"app": project["dependencies"], **project["optional-dependencies"]}
    return {group: [normalised(NAME.match(line).group(1)) for line in lines] for group, lines in groups.items()}


def pinned() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        requirement = line.split("#")[0].split(";")[0].strip()
        if requirement:
            name, separator, version = requirement.partition("==")
            assert separator and version.strip(), f"constraints.txt: {line!r} is not pinned with =="
            pins[normalised(name)] = version.strip()
    return pins


def test_every_declared_package_is_pinned_and_every_pin_declared():
    names = {name for group in declared().values() for name in group}
    pins = pinned()
    assert sorted(names - set(pins)) == []  # a dependency installed at whatever version the index has
    assert sorted(set(pins) - names) == []  # a stale pin
    assert set(declared()) == {"app", "train", "dev", "cluster"}


def test_the_app_does_not_need_the_training_or_development_packages():
    groups = declared()
    assert {"scikit-image", "scikit-learn", "pytest", "ruff", "playwright", "ray"}.isdisjoint(groups["app"])
    assert groups["cluster"] == ["ray"] and groups["train"] == ["scikit-image"]


def test_make_and_ci_install_the_extras_under_the_pins():
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    assert "-c constraints.txt" in lines and "-e .[train,dev]" in lines
    cluster = (ROOT / "requirements-cluster.txt").read_text().splitlines()
    assert "-c constraints.txt" in cluster and "-e .[cluster]" in cluster
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^\$\(STAMP\): requirements\.txt constraints\.txt pyproject\.toml$", makefile, re.M)
    assert "requirements-cluster.txt" in (ROOT / ".ci" / "run").read_text()


def test_the_console_script_is_the_command_line():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    module, _, function = project["scripts"]["hematovision"].partition(":")
    assert module == "hematovision.cli.main" and function == "main"
    from hematovision.cli.main import main

    assert list(inspect.signature(main).parameters) == ["argv"]
