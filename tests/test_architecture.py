"""The rules docs/architecture.md states, checked on the source: no import circle, drivers import only what
they may, no function over 60 lines, every step named once, and the docs cite only files the repository has."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

PACKAGE = ROOT / "llmperf_nb"
MAX_FUNCTION_LINES = 60


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            inside.update(id(n) for n in ast.walk(node))
    return inside


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = module if is_package else module.rpartition(".")[0]
    for _ in range(max(node.level - 1, 0)):
        base = base.rpartition(".")[0]
    target = (f"{base}.{node.module}" if node.module else base) if node.level else node.module
    return [target, *(f"{target}.{a.name}" for a in node.names)]


def imports_of(module: str) -> set[str]:
    """Modules of the package that ``module`` imports, anywhere in it (also inside functions), with the packages
    above them that Python runs first; TYPE_CHECKING blocks and the module's own parent packages left out."""
    path = MODULES[module]
    tree = ast.parse(path.read_text())
    skip = _type_checking_nodes(tree)
    own_parents = {module.rsplit(".", n)[0] for n in range(1, module.count(".") + 1)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in skip:
            for target in _targets(module, path.name == "__init__.py", node):
                parents = {target.rsplit(".", n)[0] for n in range(0, target.count(".") + 1)}
                found.update(t for t in parents if t in MODULES and t != module and t not in own_parents)
    return found


def cycles() -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    graph = {m: imports_of(m) for m in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for m in graph:
        if m not in index:
            visit(m)
    return found


def test_the_package_has_no_import_circle():
    assert cycles() == []


def test_the_cycle_check_sees_a_circle(tmp_path, monkeypatch):
    (tmp_path / "llmperf_nb").mkdir()
    (tmp_path / "llmperf_nb" / "__init__.py").write_text("")
    (tmp_path / "llmperf_nb" / "a.py").write_text("def f():\n    from . import b\n")
    (tmp_path / "llmperf_nb" / "b.py").write_text("from .a import f\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    modules = {_module_name(p): p for p in sorted((tmp_path / "llmperf_nb").rglob("*.py"))}
    monkeypatch.setattr(sys.modules[__name__], "MODULES", modules)
    assert cycles() == [["llmperf_nb.a", "llmperf_nb.b"]]


#: what a driver may import from this package (drivers/__init__.py states the rule)
DRIVER_MAY_IMPORT = {"llmperf_nb", "llmperf_nb.drivers", "llmperf_nb.drivers.common", "llmperf_nb.telemetry",
                     "llmperf_nb.jsonfile", "llmperf_nb.process", "llmperf_nb.exceptions", "llmperf_nb.options"}


@pytest.mark.parametrize("module", [m for m in MODULES if m.startswith("llmperf_nb.drivers.")])
def test_drivers_import_only_what_the_rule_allows(module):
    if module.endswith("_compat"):  # an engine's adaptations: the standard library and the engine's packages
        assert imports_of(module) == set()
        return
    engine = module.rpartition(".")[2]
    allowed = DRIVER_MAY_IMPORT | {f"llmperf_nb.importers.{engine}", "llmperf_nb.importers",
                                   f"llmperf_nb.drivers.{engine}_compat", f"llmperf_nb.options.{engine}"}
    assert imports_of(module) - allowed == set()


def test_what_the_drivers_may_import_imports_only_the_standard_library_and_each_other():
    options = {m for m in MODULES if m.startswith("llmperf_nb.options.")}
    shared = {m for m in DRIVER_MAY_IMPORT | options | {f"llmperf_nb.importers.{e}" for e in ("llama_cpp",)}
              if m in MODULES and not m.startswith("llmperf_nb.drivers")}
    for module in shared:
        assert imports_of(module) <= DRIVER_MAY_IMPORT | {"llmperf_nb.measurement", "llmperf_nb.importers"}, module


def _long_functions() -> list[str]:
    long = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{module}.{node.name} ({lines} lines)")
    return long


def test_no_function_is_over_60_lines():
    assert _long_functions() == []


def test_every_layer_reads_the_one_table_of_steps():
    from llmperf_nb import layout, steps

    assert tuple(steps.FUNCTIONS) == layout.STEP_NAMES == ("setup", "compile", "benchmark")
    for step in layout.STEPS:
        assert (ROOT / "notebooks" / step.notebook).exists()
        assert f'notebook.run_step(\\"{step.name}\\"' in (ROOT / "notebooks" / step.notebook).read_text()
    for path in PACKAGE.rglob("*.py"):
        if path.name != "layout.py":
            assert not re.search(r'"0[1-4]_\w+\.ipynb"|"(setup|compile)\.json"', path.read_text()), path


CITED = re.compile(r"(?<![\w./-])((?:llmperf_nb|docs|docker|tests|scripts|notebooks|params|reports)/[\w./*<>-]*)")
#: a path named after one of these is a file of that project, not of this repository
ELSEWHERE = ("llm-perf-bench", "mlc-llm", "original benchmark")
#: folders ``make report`` writes (.gitignore): a file there is cited as what the command makes
MADE = ("reports/quickstart/",)


def _cited_paths(text: str) -> set[str]:
    found = set()
    for m in CITED.finditer(text):
        before = text[max(0, m.start() - 80):m.start()]
        path = m.group(1).rstrip(".")
        if not any(e in before for e in ELSEWHERE) and not path.startswith(MADE) and not set("*<>") & set(path):
            found.add(path)
    return found


def test_docs_and_code_cite_only_files_the_repository_has():
    sources = [ROOT / "README.md", ROOT / "docker" / "README.md", *sorted((ROOT / "docs").glob("*.md")),
               *sorted(PACKAGE.rglob("*.py"))]
    missing = []
    for src in sources:
        for cited in _cited_paths(src.read_text()):
            if not (ROOT / cited).exists():
                missing.append(f"{src.relative_to(ROOT)}: {cited}")
    assert missing == []


#: docs/architecture.md, "Folders and modules": who may not import whom (direct imports, anywhere in the module)
FORBIDDEN = {
    "cells": ("params", "pipeline", "engines", "runners"),
    "params": ("pipeline", "runners", "notebook", "execute"),
    "steps": ("runners", "pipeline"),
    "engines": ("runners", "pipeline", "steps", "notebook"),
    "runners": ("pipeline", "notebook"),
    "weights": ("engines", "runners", "pipeline"),
    "results": ("engines", "runners"),
    "analysis": ("engines", "runners", "pipeline"),
    "report": ("engines", "runners", "pipeline"),
    "roofline": ("engines", "runners", "pipeline"),
    "compare": ("engines", "runners", "pipeline"),
    "throughput": ("engines", "runners", "pipeline"),
    "points": ("engines", "runners", "pipeline"),
    "workloads": ("engines", "runners", "pipeline", "steps"),
    "serving": ("runners", "pipeline"),
    "loadgen": ("engines", "runners", "pipeline"),
    **{m: ("pipeline", "runners", "engines") for m in ("models", "gpus", "hardware", "telemetry", "process", "tokenizer")},
}


def _inside(module: str, name: str) -> bool:
    return module == f"llmperf_nb.{name}" or module.startswith(f"llmperf_nb.{name}.")


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_import_only_downwards(layer):
    wrong = sorted(f"{m} imports {d}" for m in MODULES if _inside(m, layer)
                   for d in imports_of(m) if any(_inside(d, ban) for ban in FORBIDDEN[layer]))
    assert wrong == []


def test_layout_and_jsonfile_need_only_the_standard_library():
    assert imports_of("llmperf_nb.jsonfile") == set()
    assert imports_of("llmperf_nb.layout") <= {"llmperf_nb.exceptions"}
    assert imports_of("llmperf_nb.cells") <= {"llmperf_nb.layout", "llmperf_nb.jsonfile"}


def _engines():
    from llmperf_nb.engines import registry

    return [e for e in registry.values() if e.name in {p.stem for p in (ROOT / "llmperf_nb" / "drivers").glob("*.py")}]


@pytest.mark.parametrize("engine", _engines(), ids=lambda e: e.name)
def test_each_engine_option_is_declared_once_and_reaches_its_driver_as_one_document(engine):
    import dataclasses

    from llmperf_nb import options

    cls = engine.options_class
    assert cls.__module__ == f"llmperf_nb.options.{engine.name}"  # the one declaration, which the driver imports
    driver = (ROOT / "llmperf_nb" / "drivers" / f"{engine.name}.py").read_text()
    assert f"from llmperf_nb.options.{engine.name} import Options" in driver and "options.add_argument(" in driver
    for f in dataclasses.fields(cls):
        flag = f'add_argument("--{f.name.replace("_", "-")}"'
        assert flag not in driver, f"{engine.name}: option {f.name} declared again in its driver"
    default = cls()
    assert options.read(options.argv(default)[1], cls) == default


@pytest.mark.parametrize("notebook", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_every_notebook_validates_and_gives_each_cell_an_id(notebook):
    """A cell without an id makes nbformat warn (MissingIDFieldWarning) on every execution, into the published
    kernel log beside the executed copy (it did in reports/serving-h200/analysis.ipynb.kernel.log)."""
    import warnings

    import nbformat

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nb = nbformat.read(notebook, as_version=4)
        nbformat.validate(nb)
    assert all(cell.get("id") for cell in nb.cells)
