"""The package's shape, as issue 39 set it: no import circle, no module over 600 lines, Streamlit in one place."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "hematovision"
LONGEST_MODULE = 600


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return name.removesuffix(".__init__")


def imports_of(path: Path) -> set[str]:
    """Every hematovision module this file imports, by dotted name (``from a import b`` names both a and a.b)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def package_graph() -> dict[str, set[str]]:
    files = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: (imports_of(path) & files.keys()) - {name} for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    visiting, done = set(), set()

    def visit(node: str, trail: list[str]) -> list[str] | None:
        visiting.add(node)
        for target in sorted(graph[node]):
            if target in visiting:
                return [*trail[trail.index(target) :], target] if target in trail else [node, target]
            if target not in done and (cycle := visit(target, [*trail, target])):
                return cycle
        visiting.discard(node)
        done.add(node)
        return None

    for start in sorted(graph):
        if start not in done and (cycle := visit(start, [start])):
            return cycle
    return None


def test_the_cycle_finder_finds_a_circle_and_passes_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_package_has_no_import_circle():
    assert find_cycle(package_graph()) is None


def test_no_module_is_longer_than_600_lines():
    long = {module_name(p): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > LONGEST_MODULE}
    assert long == {}


def test_only_the_app_subpackage_imports_streamlit():
    importers = {module_name(p) for p in PACKAGE.rglob("*.py") if "streamlit" in imports_of(p)}
    assert importers, "the app must import Streamlit somewhere"
    assert {name for name in importers if not name.startswith("hematovision.app")} == set()
