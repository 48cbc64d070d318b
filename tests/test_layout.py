"""The package's imports run one way: no module imports itself round a circle, and no module the commands
build on imports a command (docs/architecture.md). Read from the source with ast, every import counted
(also those inside functions, which run later but tie the modules together all the same)."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fststyle"
# The entry points (python -m fststyle.X). styles.py is one too, but every part uses its painting lookup.
COMMANDS = {"fststyle.train", "fststyle.infer", "fststyle.export", "fststyle.eval", "fststyle.optimize", "fststyle.prepare"}
# The parts, one concern each; what they all share stays at the top (docs/architecture.md).
SUBPACKAGES = ("fststyle.training", "fststyle.inference", "fststyle.exporters", "fststyle.evaluation")


def module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Each module of the package -> the package's modules it imports (``from fststyle.a import b``
    counts fststyle.a.b when b is a module, else fststyle.a; the package's own __init__ is left out)."""
    modules = {module_name(p, package): p for p in package.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        graph[name] = {m for m in found if m in modules and m not in (name, package.name)}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle a depth-first walk meets, as the list of modules round it."""
    found, state, path = [], {}, []

    def walk(module: str) -> None:
        state[module] = "open"
        path.append(module)
        for imported in sorted(graph[module]):
            if state.get(imported) == "open":
                found.append(path[path.index(imported):] + [imported])
            elif imported not in state:
                walk(imported)
        path.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            walk(module)
    return found


def test_no_import_circles():
    assert circles(import_graph()) == []


def test_only_commands_import_commands():
    graph = import_graph()
    assert COMMANDS <= graph.keys()
    assert {m: sorted(graph[m] & COMMANDS) for m in graph if m not in COMMANDS and graph[m] & COMMANDS} == {}


def test_the_checks_see_a_circle_and_an_arrow_up(tmp_path):
    """The two checks on a package of three modules that breaks both rules."""
    package = tmp_path / "fststyle"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from fststyle.b import thing\n")
    (package / "b.py").write_text("def f():\n    from fststyle import a\n")
    (package / "train.py").write_text("import fststyle.a\n")
    graph = import_graph(package)
    assert circles(graph) == [["fststyle.a", "fststyle.b", "fststyle.a"]]
    (package / "b.py").write_text("import fststyle.train\n")
    assert import_graph(package)["fststyle.b"] & COMMANDS == {"fststyle.train"}


def shared_modules_reaching_up(graph: dict[str, set[str]]) -> dict[str, list[str]]:
    """The shared modules at the top (not a command, not in a subpackage) that import from a subpackage."""
    up = {m: sorted(t for t in graph[m] if t.startswith(SUBPACKAGES)) for m in graph if not m.startswith(SUBPACKAGES) and m not in COMMANDS}
    return {m: targets for m, targets in up.items() if targets}


def test_the_shared_modules_import_no_part():
    graph = import_graph()
    assert set(SUBPACKAGES) <= graph.keys()
    assert shared_modules_reaching_up(graph) == {}


def test_the_check_sees_a_shared_module_reaching_into_a_part(tmp_path):
    package = tmp_path / "fststyle"
    (package / "inference").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "inference" / "__init__.py").write_text("")
    (package / "inference" / "stylizer.py").write_text("from fststyle.images import load\n")
    (package / "images.py").write_text("def load():\n    from fststyle.inference.stylizer import x\n")
    assert shared_modules_reaching_up(import_graph(package)) == {"fststyle.images": ["fststyle.inference.stylizer"]}


def test_the_api_pages_classes_import_from_the_top():
    """`import fststyle` alone loads no PyTorch (the quick path never does); the API page's classes come
    from the top, each from its module in the parts."""
    code = ("import sys, fststyle; bare = 'torch' in sys.modules; "
            "from fststyle import FlickerMeter, Stabilizer, Stylizer, TransformerNet; "
            "print(bare, *(c.__module__ for c in (Stylizer, Stabilizer, FlickerMeter, TransformerNet)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout.split()
    assert out == ["False", "fststyle.inference.stylizer", "fststyle.inference.stabilize", "fststyle.evaluation.flicker", "fststyle.net"]
