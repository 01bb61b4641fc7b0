"""The shape of the package: no module imports one that imports it back, and none reaches up to the package
root (``verydeep/__init__.py`` is for users; inside the package every module imports what it needs by name)."""

import ast
from pathlib import Path

import verydeep

SRC = Path(verydeep.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = SRC.parent / Path(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imports(path: Path) -> set[str]:
    """The verydeep modules ``path`` imports, at the top or inside a function."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            submodules = {f"{target}.{alias.name}" for alias in node.names}
            submodules = {name for name in submodules if is_module(name)}
            found |= submodules
            if len(submodules) < len(node.names):  # names defined in `target` itself
                found.add(target)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {name for name in found if name == "verydeep" or name.startswith("verydeep.")}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) - {module_name(p)} for p in SRC.rglob("*.py")}


def test_no_module_imports_the_package_root():
    upward = sorted(m for m, targets in graph().items() if "verydeep" in targets and m != "verydeep")
    assert upward == []


def test_there_is_no_import_circle():
    edges = graph()
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        for target in sorted(edges.get(node, ())):
            if target in path:
                cycles.append(path[path.index(target) :] + [target])
            elif len(path) < 12:
                visit(target, path + [target])

    for start in sorted(edges):
        visit(start, [start])
    assert cycles == []
