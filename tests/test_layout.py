"""The package's structure as the README draws it: every module has its line in the layout
section, the folders are layers that import only downwards (training never imports reporting), and
the imports between modules form no cycle."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "repro"


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def imports(path: Path, known: set) -> set:
    """The package modules `path` imports (`from repro.x import y` counts y when y is a module)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "repro":
            out |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known}
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
    return out


def find_cycle(graph: dict) -> list | None:
    """A cycle of `graph` (node -> nodes it imports) as a path, or None (depth-first search)."""
    done, path = set(), []

    def visit(node):
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if cycle := visit(dep):
                return cycle
        path.pop()
        done.add(node)
        return None

    return next((c for c in map(visit, sorted(graph)) if c), None)


def test_find_cycle_on_hand_made_graphs():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_the_imports_between_modules_form_no_cycle():
    known = modules()
    graph = {}
    for name, path in known.items():
        # a package's __init__ importing its own submodules (registries) is not a layer crossing
        graph[name] = {m for m in imports(path, set(known)) if m != name and not m.startswith(name + ".")
                       and not name.startswith(m + ".")}
    assert find_cycle(graph) is None


# The layers, bottom up: a module imports modules of its own layer or below. The analysis tools
# that load a run (measure, batch_axis) sit beside the loop they assemble; the command lines on top.
LAYERS = (("core", ("repro.errors", "repro.config", "repro.compose", "repro.paths", "repro.schedules",
                    "repro.layers", "repro.models", "repro.optim", "repro.preemption", "repro.distributed",
                    "repro.arms", "repro.seeding")),
          ("records", ("repro.records",)),
          ("data and measurement", ("repro.data", "repro.analysis")),
          ("training", ("repro.loop", "repro.analysis.measure", "repro.analysis.batch_axis")),
          ("reporting", ("repro.report",)),
          ("command lines", ("repro.train", "repro.train_batched", "repro.plan", "repro.drift")))


def layer(module: str) -> int:
    """The index of `module`'s layer in LAYERS: the longest prefix that names it."""
    owners = [(len(prefix), rank) for rank, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes
              if module == prefix or module.startswith(prefix + ".")]
    if not owners:
        raise AssertionError(f"{module} belongs to no layer: give it one in tests/test_layout.py LAYERS")
    return max(owners)[1]


def upward(graph: dict) -> list[str]:
    """The imports of `graph` that run up a layer, as 'importer -> imported'."""
    return [f"{a} -> {b}" for a, deps in sorted(graph.items()) for b in sorted(deps) if layer(b) > layer(a)]


def test_upward_finds_a_hand_made_crossing():
    assert upward({"repro.loop.run": {"repro.records.rundir", "repro.report.claims"},
                   "repro.report.plan": {"repro.loop.run"}}) == ["repro.loop.run -> repro.report.claims"]
    assert layer("repro.analysis.measure") == layer("repro.loop.run") > layer("repro.analysis.probe")


def test_the_layers_import_only_downwards():
    known = modules()
    graph = {name: {m for m in imports(path, set(known)) if m in known and m != "repro"}
             for name, path in known.items() if name != "repro"}
    assert not upward(graph), "imports that run up a layer (training must never import reporting)"
    reporting = [n for n in graph if layer(n) >= layer("repro.report")]
    assert all(layer(m) < layer("repro.report") for n in graph if n not in reporting for m in graph[n])


def test_every_module_has_its_line_in_the_readme_layout():
    readme = (ROOT / "README.md").read_text()
    layout = readme.split("## Layout", 1)[1].split("```", 2)[1]
    missing = [name for name, path in modules().items()
               if path.stem != "__init__" and path.name not in layout]
    assert not missing, f"README's layout does not list {missing}"
