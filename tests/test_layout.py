"""The package's layout keeps its promises: imports point one way, from the front ends to the library."""

import ast
from pathlib import Path

import pianocomposer

PACKAGE = Path(pianocomposer.__file__).parent
FRONT_ENDS = "pianocomposer.frontends"
# the front ends that may import other front ends: the command line and the page (and __main__, which runs the first)
ENTRY_POINTS = {"frontends/cli.py", "frontends/serve.py", "__main__.py"}


def imported(path: Path) -> set[str]:
    """Every module a source file imports, at its top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return names


def test_no_library_module_imports_a_front_end():
    offenders = {}
    for path in PACKAGE.rglob("*.py"):
        where = path.relative_to(PACKAGE).as_posix()
        if where in ENTRY_POINTS or where.startswith("shipped/"):
            continue
        found = sorted(n for n in imported(path) if n == FRONT_ENDS or n.startswith(FRONT_ENDS + "."))
        if found:
            offenders[where] = found
    assert not offenders, f"only {sorted(ENTRY_POINTS)} may import a front end: {offenders}"


def test_every_module_lives_in_a_stage_folder():
    loose = {p.name for p in PACKAGE.glob("*.py")}
    assert loose <= {"__init__.py", "__main__.py", "errors.py", "config.py", "_util.py", "pool.py"}, loose
