"""The project's shape: the engine installs with torch only, one version number, no import
cycles among the project's modules (function-level imports count), no module over about 450
lines, and README's layout tree names every module there is."""
import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STDLIB = set(sys.stdlib_module_names)


def imports(path: Path) -> set[str]:
    """Top-level names of every module a file imports, at any depth (relative ones resolved
    to 'deepr_engine' / 'app')."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add(ROOT.joinpath(*path.relative_to(ROOT).parts[:1]).name if node.level
                      else node.module.split(".")[0])
    return names


def test_the_engine_needs_torch_only():
    """`import deepr_engine` loads only modules that import torch and the standard library
    (the run harness, deepr_engine.run, is an extra), and the package declares torch alone."""
    out = subprocess.run([sys.executable, "-c", "import sys, deepr_engine; print('\\n'.join(m for m in "
                          "sys.modules if m.split('.')[0] == 'deepr_engine'))"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert "deepr_engine.optim" in out and not any(m.startswith("deepr_engine.run") for m in out)
    for mod in out:
        rel = Path(*mod.split("."))
        path = ROOT / (rel / "__init__.py" if (ROOT / rel).is_dir() else rel.with_suffix(".py"))
        third_party = imports(path) - STDLIB - {"torch", "deepr_engine", "__future__"}
        assert not third_party, (mod, third_party)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert [d.split(">")[0].split("=")[0] for d in project["dependencies"]] == ["torch"]
    assert "version" in project["dynamic"]


def test_one_version_number():
    toml = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert toml["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "deepr_engine.__version__"}
    import deepr_engine
    assert re.fullmatch(r"\d+\.\d+\.\d+", deepr_engine.__version__)


def test_every_module_is_small_and_every_requirement_is_used():
    big = [(str(p.relative_to(ROOT)), n) for p in [*ROOT.glob("deepr_engine/**/*.py"), *ROOT.glob("app/**/*.py")]
           if (n := len(p.read_text().splitlines())) > 450]
    assert not big, big
    used = set()
    for p in [*ROOT.glob("deepr_engine/**/*.py"), *ROOT.glob("app/**/*.py"), *ROOT.glob("tests/*.py"),
              *ROOT.glob("benchmarks/*.py")]:
        used |= imports(p)
    import_name = {"scikit-learn": "sklearn", "pillow": "PIL", "pytest-timeout": None, "pytest-xdist": None, "ray[tune]": "ray"}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        req = re.split(r"[<>=\s#]", line.strip(), maxsplit=1)[0]
        if not req:
            continue
        name = import_name.get(req, req.replace("-", "_"))
        assert name is None or name in used, f"requirements.txt lists {req}, which nothing imports"


def module_graph() -> dict[str, set[str]]:
    """Project module -> the project modules it imports (any depth; TYPE_CHECKING blocks out)."""
    files = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
             for p in [*ROOT.glob("deepr_engine/**/*.py"), *ROOT.glob("app/**/*.py")]}
    graph = {m: set() for m in files}
    for mod, path in files.items():
        pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        tree = ast.parse(path.read_text())
        skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                and "TYPE_CHECKING" in ast.unparse(node.test) for b in node.body for n in ast.walk(b)}
        for node in ast.walk(tree):
            if id(node) in skip or not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    parts = pkg.split(".")[:len(pkg.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            for t in targets:
                while t and t not in files and "." in t:
                    t = t.rpartition(".")[0]
                # a package's __init__ importing its own submodules is not a cycle
                if t in files and t != mod and not (files[t].name == "__init__.py" and mod.startswith(t + ".")):
                    graph[mod].add(t)
    return graph


def test_no_import_cycles():
    import graphlib
    try:
        tuple(graphlib.TopologicalSorter(module_graph()).static_order())
    except graphlib.CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None


def test_readme_layout_names_every_module():
    block = re.search(r"## Layout\n\n```\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    missing = [str(p.relative_to(ROOT)) for p in [*ROOT.glob("deepr_engine/**/*.py"), *ROOT.glob("app/**/*.py")]
               if p.name != "__init__.py" and p.stem not in block]
    assert not missing, f"README's layout does not name {missing}"
