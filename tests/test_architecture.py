"""Architecture rules for lucidflux_cli, checked on the source with ``ast`` (nothing is imported).

Layers, low to high (docs/import_graph.py, LAYERS): package __init__ / errors / plugins, weights,
imageio | model | data | metrics (siblings), training | review, runner, one package per command
(restore | evaluation | curation | finetune | diagnostics: siblings), commands / __main__. A module
imports only its own layer and lower ones; no import cycles; no module over 700 lines (500 is the
guide, not a ceiling to cram under: `python docs/import_graph.py --text` lists the modules past
it). The picture docs/images/import-graph.png comes from the same graph (python docs/import_graph.py).

Runs without the package's conftest too: pytest --noconftest tests/test_architecture.py
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_import_graph() -> ModuleType:
    # docs/ is not a package; load the one copy of the graph code from its file.
    if "import_graph" in sys.modules:
        return sys.modules["import_graph"]
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "docs" / "import_graph.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["import_graph"] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


ig = _load_import_graph()


@pytest.fixture(scope="module")
def graph() -> ig.Graph:
    return ig.build_graph(ROOT / "lucidflux_cli")


def _report(title: str, problems: list[str]) -> str:
    return f"{len(problems)} {title}:\n  " + "\n  ".join(problems)


def test_no_import_cycles(graph: ig.Graph) -> None:
    cycles = ig.find_cycles(graph)
    assert not cycles, _report("import cycle(s), deferred imports included", cycles)


def test_imports_respect_layers(graph: ig.Graph) -> None:
    violations = ig.layer_violations(graph)
    assert not violations, _report("import(s) against the layer order", violations)


def test_no_module_past_the_split_limit(graph: ig.Graph) -> None:
    long = ig.long_modules(graph, ig.SPLIT_LINES)
    assert not long, _report("module(s) to split", long)


def test_graph_sees_the_whole_package(graph: ig.Graph) -> None:
    # A parser that silently found nothing would pass every rule above.
    files = sorted((ROOT / "lucidflux_cli").rglob("*.py"))
    assert len(graph.modules) == len(files)
    assert graph.edges, "no lucidflux_cli imports found at all"


# ------------------------------------------------------------------- the checker on a tiny package


def _write(root: Path, files: dict[str, str]) -> Path:
    package = root / "lucidflux_cli"
    for rel, text in files.items():
        path = package / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return package


def test_checker_catches_cycles_upward_and_sibling_imports(tmp_path: Path) -> None:
    package = _write(
        tmp_path,
        {
            "__init__.py": '__version__ = "0"\n',
            "errors.py": "class E(Exception): ...\n",
            # upward: layer 1 importing layer 4, hidden in a function
            "plugins.py": "def load():\n    from lucidflux_cli.runner import run\n    return run\n",
            "weights.py": "from lucidflux_cli.errors import E\n",
            "imageio/__init__.py": "",
            # sibling: imageio -> model, relative and inside TYPE_CHECKING
            "imageio/media.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..model import pipe\n"
            ),
            "model/__init__.py": "",
            # `from package import submodule` is an import of that submodule
            "model/pipe.py": "from lucidflux_cli.model import tiles\nfrom . import tiles as t2\n",
            "model/tiles.py": "import lucidflux_cli.weights\n",
            "runner/__init__.py": "",
            # a cycle closed by a deferred import
            "runner/run.py": "from lucidflux_cli.runner import workers\n",
            "runner/workers.py": "def go():\n    from .run import x\n",
            "commands/__init__.py": "",
            "commands/main.py": (
                "from lucidflux_cli.runner import run\nfrom lucidflux_cli import __version__\n"
            ),
            "commands/long.py": "x = 1\n" * 501,
        },
    )
    graph = ig.build_graph(package)

    edges = {(e.source, e.target, e.kind) for e in graph.edges}
    assert ("lucidflux_cli.model.pipe", "lucidflux_cli.model.tiles", "module") in edges
    assert ("lucidflux_cli.imageio.media", "lucidflux_cli.model.pipe", "typing") in edges
    assert ("lucidflux_cli.runner.workers", "lucidflux_cli.runner.run", "function") in edges
    assert ("lucidflux_cli.commands.main", "lucidflux_cli", "module") in edges

    cycles = ig.find_cycles(graph)
    assert [c.split("  [")[0] for c in cycles] == [
        "lucidflux_cli.runner.run -> lucidflux_cli.runner.workers -> lucidflux_cli.runner.run"
    ]

    violations = ig.layer_violations(graph)
    assert len(violations) == 2, violations
    assert violations[0].startswith(
        "lucidflux_cli.imageio.media -> lucidflux_cli.model.pipe (layer 3 imageio imports layer 3 model)"
    )
    assert violations[1].startswith(
        "lucidflux_cli.plugins -> lucidflux_cli.runner.run (layer 1 core imports layer 5 runner)"
    )

    assert ig.long_modules(graph) == ["lucidflux_cli.commands.long: 501 lines (limit 500)"]


def test_checker_flags_modules_outside_every_layer(tmp_path: Path) -> None:
    package = _write(tmp_path, {"__init__.py": "", "stray.py": "", "errors.py": "from . import stray\n"})
    violations = ig.layer_violations(ig.build_graph(package))
    assert violations[0] == "lucidflux_cli.stray is in no layer (add it to LAYERS in docs/import_graph.py)"
    assert violations[1].startswith(
        "lucidflux_cli.errors -> lucidflux_cli.stray (imports a module in no layer)"
    )


def test_a_clean_package_passes(tmp_path: Path) -> None:
    package = _write(
        tmp_path,
        {
            "__init__.py": '__version__ = "0"\n',
            "__main__.py": "from lucidflux_cli.commands.main import main\n",
            "errors.py": "",
            "plugins.py": "from .errors import *\n",
            "weights/__init__.py": "from lucidflux_cli.weights.registry import R\n",
            "weights/registry.py": "from .. import errors\n",
            "model/__init__.py": "from lucidflux_cli.model.a import A\n",
            "model/a.py": "from lucidflux_cli.weights import R\nfrom lucidflux_cli.model import b\n",
            "model/b.py": "import lucidflux_cli.plugins\n",
            "runner/run.py": "from lucidflux_cli.model import A\nfrom lucidflux_cli import imageio\n",
            "imageio/__init__.py": "from lucidflux_cli import __version__\n",
            "commands/main.py": "def main():\n    from lucidflux_cli.runner import run\n",
        },
    )
    graph = ig.build_graph(package)
    assert ig.find_cycles(graph) == []
    assert ig.layer_violations(graph) == []
    assert ig.long_modules(graph) == []
    # a package __init__ that re-exports its submodule is not a cycle with it
    assert ("lucidflux_cli.model", "lucidflux_cli.model.a") in {(e.source, e.target) for e in graph.edges}


def test_picture_and_text_from_a_package_with_violations(tmp_path: Path) -> None:
    package = _write(
        tmp_path,
        {
            "__init__.py": "",
            "errors.py": "from lucidflux_cli.runner import run\n",
            "runner/run.py": "from lucidflux_cli import errors\n",
            "commands/main.py": "def main():\n    from lucidflux_cli.runner import run\n",
        },
    )
    graph = ig.build_graph(package)
    text = ig.text_report(graph)
    assert "errors -> runner" in text and "VIOLATION" in text
    assert "deferred/typing only" in text  # commands -> runner
    out = tmp_path / "graph.png"
    ig.draw(graph, out, width=1000)
    assert out.stat().st_size > 1000
