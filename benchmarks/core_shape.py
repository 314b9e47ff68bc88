"""The shape of the core, measured: lines, functions over cyclomatic complexity 15, ``except Exception``
blocks, modules over 550 lines, and import cycles among otel-grpo's modules (lazy imports included).

    python -m benchmarks.core_shape                 # the working tree
    python -m benchmarks.core_shape --ref HEAD~5    # and a commit, side by side

The core is ``otel_grpo/`` without ``tools/`` and ``bootstrap/``, plus ``exporters/`` (installed as
``otel_grpo.exporters``). Cycles are found on the graph of every ``import`` statement of the package,
including those inside functions, with ``exporters.X`` read as ``otel_grpo.exporters.X``.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import tempfile
from pathlib import Path

CC_LIMIT = 15
LINES_LIMIT = 550


def _core_files(root: Path) -> list[Path]:
    files = [p for p in (root / "otel_grpo").rglob("*.py") if not {"tools", "bootstrap"} & set(p.parts)]
    return sorted(files + list((root / "exporters").rglob("*.py")))


def _package_files(root: Path) -> list[Path]:
    return sorted(list((root / "otel_grpo").rglob("*.py")) + list((root / "exporters").rglob("*.py")))


def _module_name(root: Path, path: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[0] == "exporters":
        parts = ["otel_grpo", *parts]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("otel_grpo")}


def _cycles(root: Path) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    modules: dict[str, set[str]] = {}
    for path in _package_files(root):
        name = _module_name(root, path)
        modules[name] = _imports(ast.parse(path.read_text(encoding="utf-8")), name, path.name == "__init__.py")
    graph = {m: {d for d in deps if d in modules and d != m} for m, deps in modules.items()}
    # A package's __init__ is imported with any of its submodules: not an edge of its own here.
    graph = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for dep in graph[node]:
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in graph:
        if node not in index:
            visit(node)
    return out


def measure(root: Path) -> dict[str, object]:
    """The figures of the tree at ``root``."""
    from radon.complexity import cc_visit

    core = _core_files(root)
    lines = sum(len(p.read_text(encoding="utf-8").splitlines()) for p in core)
    over_cc = []
    excepts = 0
    for path in core:
        source = path.read_text(encoding="utf-8")
        excepts += sum(
            1
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.ExceptHandler) and isinstance(node.type, ast.Name) and node.type.id == "Exception"
        )
        for function in cc_visit(source):  # functions and methods (a class's methods are listed too)
            if getattr(function, "letter", "") != "C" and function.complexity > CC_LIMIT:
                over_cc.append(f"{path.relative_to(root)}:{function.fullname} ({function.complexity})")
    big = [
        f"{p.relative_to(root)} ({n})"
        for p in _package_files(root)
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > LINES_LIMIT
    ]
    return {
        "core lines": lines,
        "functions over CC 15": sorted(set(over_cc)),
        "except Exception blocks": excepts,
        "modules over 550 lines": big,
        "import cycles": _cycles(root),
    }


def _at_ref(ref: str) -> Path:
    top = Path(subprocess.check_output(["git", "rev-parse", "--show-toplevel"], text=True).strip())
    where = Path(tempfile.mkdtemp(prefix="core-shape-"))
    archive = subprocess.run(["git", "-C", str(top), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    return where


def _cell(value: object) -> str:
    if isinstance(value, list):
        return f"{len(value)}" + (f": {'; '.join(map(str, value))}" if value else "")
    return str(value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", help="also measure this git commit (before/after)")
    args = parser.parse_args(argv)
    now = measure(Path.cwd())
    columns = [("this tree", now)]
    if args.ref:
        columns.insert(0, (args.ref, measure(_at_ref(args.ref))))
    print("| measure | " + " | ".join(name for name, _ in columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for key in now:
        print(f"| {key} | " + " | ".join(_cell(figures[key]) for _, figures in columns) + " |")


if __name__ == "__main__":
    main()
