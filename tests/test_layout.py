"""The package's shape: wings import only downward, no import cycles, argparse only in the CLI.

Every ``import`` statement of every module counts, also those inside functions (imports put
off for start-up time are still dependencies) and in ``if TYPE_CHECKING:`` blocks (a type
checker follows them: a type-only circle is still a circle).
"""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "deap_mln"
# A module may import its own subpackage and anything on a lower layer, nothing else.
LAYERS = {
    "leaves": 0,    # io, configs, seeding, stats, parallel, dispatch, saved_losses, plotting, reduction, loss_check, version
    "data": 1,
    "training": 2,  # what the user trains: models, the one trainer, the fitness by training
    "mln": 3, "gp": 3, "taylor": 3,
    "metatest": 4,
    "deploy": 5,
    "cli": 6,
    "root": 6,      # deap_mln/__init__.py: lazy re-exports of every wing's public names (none from cli)
    "entry": 7,     # __main__, launch
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room(module: str) -> str:
    """The subpackage (wing) of a module, or 'root' / 'leaves' / 'entry' for top-level modules."""
    if module == "deap_mln":
        return "root"
    parts = module.split(".")
    if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()):
        return parts[1]
    return "entry" if module in ("deap_mln.__main__", "deap_mln.launch") else "leaves"


def imports_of(path: Path) -> set[str]:
    """deap_mln modules imported anywhere in ``path`` (``from deap_mln.x import y`` counts y if it is a module)."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("deap_mln")}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import; the package uses absolute imports"
            if node.module and node.module.startswith("deap_mln"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if sub in MODULES else node.module)
    return found


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {m: imports_of(p) - {m} for m, p in MODULES.items()}


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Imports that leave a module's wing for a wing on the same or a higher layer."""
    bad = []
    for module, targets in graph.items():
        for target in targets:
            here, there = room(module), room(target)
            if here == there and here != "entry":
                continue
            if LAYERS[there] >= LAYERS[here]:
                bad.append(f"{module} -> {target}")
    return bad


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a path, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target in graph and target not in state and (cycle := visit(target, path + [target])):
                return cycle
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module, [module])):
            return cycle
    return None


def test_every_wing_has_a_layer():
    assert {room(m) for m in MODULES} <= set(LAYERS)


def test_imports_go_only_down_or_within_the_wing():
    assert upward_imports(GRAPH) == []


def test_there_are_no_import_cycles():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_graph_sees_imports_in_functions_and_type_checking_blocks():
    assert "deap_mln.dask_backend" in GRAPH["deap_mln.parallel"]  # imported inside evaluation_map
    assert "deap_mln.taylor.run" in GRAPH["deap_mln"]              # the root's TYPE_CHECKING block
    assert GRAPH["deap_mln.version"] == set()


def test_argparse_lives_only_in_the_cli():
    users = [m for m, p in MODULES.items() if "argparse" in {a.name for n in ast.walk(ast.parse(p.read_text()))
                                                             if isinstance(n, ast.Import) for a in n.names}]
    assert users and all(room(m) == "cli" for m in users), users


def test_the_checks_see_an_upward_import_and_a_cycle():
    assert upward_imports({"deap_mln.mln.run": {"deap_mln.cli.main"}}) == ["deap_mln.mln.run -> deap_mln.cli.main"]
    assert upward_imports({"deap_mln.mln.run": {"deap_mln.gp.tree"}}) == ["deap_mln.mln.run -> deap_mln.gp.tree"]
    assert upward_imports({"deap_mln.deploy.export": {"deap_mln.mln.network", "deap_mln.io"}}) == []
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_readme_layout_names_every_module():
    readme = (PACKAGE.parent / "README.md").read_text()
    block = readme[readme.index("## Layout"):]
    block = block[:block.index("```", block.index("```") + 3)]
    listed = {line.split()[0] for line in block.splitlines() if line.strip().split() and line.strip().split()[0].endswith(".py")}
    modules = {path.name for path in PACKAGE.rglob("*.py")}
    assert modules <= listed, f"README's Layout lacks {sorted(modules - listed)}"
