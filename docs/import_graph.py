"""The package's import graph, read with ``ast`` only, and its picture.

    python docs/import_graph.py           # writes docs/images/import-graph.png
    python docs/import_graph.py --text    # prints the layer-to-layer edges instead

tests/test_architecture.py loads this file for the same graph, so the rules and the picture
never disagree. Nothing here imports ``lucidflux_cli``: the package is parsed, not executed
(importing it would pull torch and break while modules are being moved).
"""

from __future__ import annotations

import argparse
import ast
import math
import sys
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Pillow is needed for the picture only, not by the tests' rule checks
    from PIL import ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "lucidflux_cli"
MAX_LINES = 500  # the guide: a module a reader holds in mind; past it, look for a seam
SPLIT_LINES = 700  # the limit: a module this long is split (tests/test_architecture.py)
Point = tuple[float, float]


@dataclass(frozen=True)
class Layer:
    name: str
    rank: int  # low to high; a module may import only its own rank and lower ones
    prefixes: tuple[str, ...]  # relative to the package; "" is the package's own __init__


# Same rank, different name = siblings, which must not import each other (imageio vs model).
LAYERS: tuple[Layer, ...] = (
    Layer("core", 1, ("", "errors", "plugins", "atomic", "pixels", "devices", "manifests")),
    Layer("weights", 2, ("weights",)),
    Layer("imageio", 3, ("imageio",)),
    Layer("model", 3, ("model",)),
    Layer("data", 3, ("data",)),
    Layer("metrics", 3, ("metrics",)),
    Layer("training", 4, ("training",)),
    Layer("review", 4, ("review",)),  # imports imageio and below only (no torch, no runner)
    Layer("runner", 5, ("runner",)),
    # one package per command, on the shared runner; siblings: no command imports another's
    Layer("restore", 6, ("restore",)),
    Layer("evaluation", 6, ("evaluation",)),
    Layer("curation", 6, ("curation",)),
    Layer("finetune", 6, ("finetune",)),
    Layer("diagnostics", 6, ("diagnostics",)),
    Layer("commands", 7, ("commands", "__main__")),
)


@dataclass(frozen=True)
class Edge:
    source: str  # dotted module names; a package is its __init__
    target: str
    path: Path  # the importing file
    line: int
    kind: str  # "module" (runs on import), "function" (deferred) or "typing" (TYPE_CHECKING only)

    def where(self) -> str:
        try:
            shown = self.path.relative_to(ROOT)
        except ValueError:
            shown = self.path
        return f"{shown}:{self.line}" + ("" if self.kind == "module" else f" ({self.kind})")


@dataclass
class Graph:
    package: str
    modules: dict[str, Path]  # dotted name -> file
    packages: set[str]  # dotted names whose file is an __init__.py
    edges: list[Edge]


# ---------------------------------------------------------------------------------------- parsing


def discover(package_dir: Path) -> tuple[dict[str, Path], set[str]]:
    """Every .py under the package, keyed by its dotted module name."""
    package = package_dir.name
    modules: dict[str, Path] = {}
    packages: set[str] = set()
    for path in sorted(package_dir.rglob("*.py")):
        parts = [package, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
            packages.add(".".join(parts))
        modules[".".join(parts)] = path
    return modules, packages


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
    """Import statements at any depth, each with when it runs."""

    def walk(node: ast.AST, kind: str) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child, kind
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                yield from walk(child, "typing" if kind == "typing" else "function")
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    yield from walk(ast.Module(body=[stmt], type_ignores=[]), "typing")
                for stmt in child.orelse:  # the else branch does run
                    yield from walk(ast.Module(body=[stmt], type_ignores=[]), kind)
            else:  # class bodies, try/with/if blocks run with their enclosing scope
                yield from walk(child, kind)

    yield from walk(tree, "module")


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]) -> list[str]:
    """Dotted modules one statement imports; relative names resolved against ``module``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        anchor = module.split(".") if is_package else module.split(".")[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)] if node.level > 1 else anchor
        base = ".".join([*anchor, base] if base else anchor)
    # `from pkg import name` imports the submodule pkg.name when there is one, else pkg itself.
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]


def build_graph(package_dir: Path | None = None) -> Graph:
    """Edges from each module to each package module it imports (ancestor __init__s implied, not listed).

    Only the named module counts, not the parent packages Python also initialises on the way:
    otherwise every package whose __init__ re-exports a submodule would be a cycle by construction.
    """
    package_dir = package_dir or ROOT / PACKAGE
    package = package_dir.name
    modules, packages = discover(package_dir)
    known = set(modules)
    edges: list[Edge] = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, kind in _imports(tree):
            for target in _targets(node, module, module in packages, known):
                if target == package or target.startswith(package + "."):
                    edges.append(Edge(module, target, path, node.lineno, kind))
    return Graph(package, modules, packages, edges)


# ------------------------------------------------------------------------------------------ rules


def layer_of(module: str, package: str = PACKAGE) -> Layer | None:
    """The layer a module belongs to (longest matching prefix); None when it is in none."""
    rel = (
        module[len(package) + 1 :]
        if module.startswith(package + ".")
        else ("" if module == package else None)
    )
    if rel is None:
        return None
    best: tuple[int, Layer] | None = None
    for layer in LAYERS:
        for prefix in layer.prefixes:
            # "" (the package __init__) matches only itself, never every module below it
            hit = rel == prefix if prefix == "" else rel == prefix or rel.startswith(prefix + ".")
            if hit and (best is None or len(prefix) > best[0]):
                best = (len(prefix), layer)
    return best[1] if best else None


def allowed(source: Layer, target: Layer) -> bool:
    return target.rank < source.rank or target.name == source.name


def layer_violations(graph: Graph) -> list[str]:
    """``module -> imported (layer X imports layer Y)`` for every import that goes up or sideways."""
    found: list[str] = []
    for module in sorted(graph.modules):
        if layer_of(module, graph.package) is None:
            found.append(f"{module} is in no layer (add it to LAYERS in docs/import_graph.py)")
    seen: set[tuple[str, str]] = set()
    for edge in sorted(graph.edges, key=lambda e: (e.source, e.target, e.line)):
        src, dst = layer_of(edge.source, graph.package), layer_of(edge.target, graph.package)
        if (edge.source, edge.target) in seen or src is None:
            continue
        if dst is None:
            seen.add((edge.source, edge.target))
            found.append(f"{edge.source} -> {edge.target} (imports a module in no layer) at {edge.where()}")
        elif not allowed(src, dst):
            seen.add((edge.source, edge.target))
            found.append(
                f"{edge.source} -> {edge.target} (layer {src.rank} {src.name} imports layer "
                f"{dst.rank} {dst.name}) at {edge.where()}"
            )
    return found


def _components(nodes: Iterable[str], succ: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components (iterative Tarjan: no recursion limit on deep graphs)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []
    for start in nodes:
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(succ[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    result.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(succ[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return result


def find_cycles(graph: Graph) -> list[str]:
    """One shortest cycle through each module that is on one, as ``a -> b -> a  [where]``.

    TYPE_CHECKING imports never run, so they cannot form a cycle (the layer rule still covers them).
    """
    succ: dict[str, set[str]] = defaultdict(set)
    first: dict[tuple[str, str], Edge] = {}
    for edge in sorted(graph.edges, key=lambda e: (e.kind != "module", e.line)):
        if edge.kind != "typing":
            succ[edge.source].add(edge.target)
            first.setdefault((edge.source, edge.target), edge)
    nodes = sorted(set(graph.modules) | set(succ))
    cycles: dict[tuple[str, ...], str] = {}
    for component in _components(nodes, succ):
        members = set(component)
        for start in component:
            if len(component) == 1 and start not in succ[start]:
                continue
            # BFS from start's successors back to start, staying inside the component
            parent: dict[str, str] = {}
            queue = deque(n for n in sorted(succ[start]) if n in members)
            for n in queue:
                parent[n] = start
            while queue and start not in queue:
                node = queue.popleft()
                for nxt in sorted(succ[node]):
                    if nxt in members and nxt not in parent:
                        parent[nxt] = node
                        queue.append(nxt)
                if start in parent:
                    break
            chain = [start]
            while (node := parent[chain[-1]]) != start:
                chain.append(node)
            chain = [start, *reversed(chain[1:]), start]
            body = tuple(chain[:-1])
            turn = body.index(min(body))  # one entry per cycle, whichever module it was found from
            key = body[turn:] + body[:turn]
            if key not in cycles:
                hops = ", ".join(first[(a, b)].where() for a, b in zip(chain, chain[1:], strict=False))
                cycles[key] = " -> ".join(chain) + f"  [{hops}]"
    return [cycles[k] for k in sorted(cycles)]


def long_modules(graph: Graph, limit: int = MAX_LINES) -> list[str]:
    found = []
    for module, path in sorted(graph.modules.items()):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > limit:
            found.append(f"{module}: {lines} lines (limit {limit})")
    return found


# ------------------------------------------------------------------------------------------ picture


def group_of(module: str, graph: Graph) -> str:
    """A module's box: the deepest package holding it, or a top-level module itself."""
    rel = module.split(".")[1:]
    if not rel:
        return "__init__"
    if module in graph.packages:
        return ".".join(rel)
    return ".".join(rel[:-1]) if len(rel) > 1 else rel[0]


@dataclass(frozen=True)
class GroupEdge:
    source: str
    target: str
    count: int  # distinct module-to-module pairs behind this arrow
    runtime: bool  # at least one of them imports when the module loads (else deferred / typing only)
    violation: bool


def group_edges(graph: Graph) -> tuple[list[str], list[GroupEdge]]:
    groups = sorted({group_of(m, graph) for m in graph.modules})
    pairs: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
    runtime: set[tuple[str, str]] = set()
    bad: set[tuple[str, str]] = set()
    for e in graph.edges:
        if e.target not in graph.modules:
            continue
        key = (group_of(e.source, graph), group_of(e.target, graph))
        if key[0] == key[1]:
            continue
        pairs[key].add((e.source, e.target))
        if e.kind == "module":
            runtime.add(key)
        src, dst = layer_of(e.source, graph.package), layer_of(e.target, graph.package)
        if src is None or dst is None or not allowed(src, dst):
            bad.add(key)
    edges = [GroupEdge(s, t, len(v), (s, t) in runtime, (s, t) in bad) for (s, t), v in sorted(pairs.items())]
    return groups, edges


def text_report(graph: Graph) -> str:
    _, edges = group_edges(graph)
    rows = []
    for e in edges:
        mark = "  VIOLATION" if e.violation else ""
        when = "" if e.runtime else "  (deferred/typing only)"
        rows.append(f"{e.source:>16} -> {e.target:<16} {e.count:3d} module edge(s){when}{mark}")
    return "\n".join(rows)


def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    from PIL import ImageFont

    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    for path in (name, f"/usr/share/fonts/truetype/dejavu/{name}"):
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def _layout(graph: Graph, groups: list[str], edges: list[GroupEdge]) -> list[list[str]]:
    """Rows of boxes, highest layer first; within a row, ordered to keep arrows short."""
    by_rank: dict[int, list[str]] = defaultdict(list)
    for g in groups:
        layer = layer_of(_module_of_group(g, graph), graph.package)
        by_rank[layer.rank if layer else 0].append(g)
    rows = [by_rank[r] for r in sorted(by_rank, reverse=True)]
    # A few barycentre sweeps: each box moves towards the boxes it is connected to.
    for _ in range(4):
        x = {g: (i + 0.5) / len(row) for row in rows for i, g in enumerate(row)}
        for row in rows:

            def pull(g: str, x: dict[str, float] = x, row: list[str] = row) -> float:
                others = [e.target if e.source == g else e.source for e in edges if g in (e.source, e.target)]
                near = [x[o] for o in others if o not in row]  # same-row links do not pull
                return sum(near) / len(near) if near else x[g]

            # boxes of one layer stay side by side (model, model.loading, model.modules)
            layer_pull: dict[str, list[float]] = defaultdict(list)
            for g in row:
                layer_pull[_layer_name(g, graph)].append(pull(g))
            row.sort(
                key=lambda g: (
                    sum(layer_pull[_layer_name(g, graph)]) / len(layer_pull[_layer_name(g, graph)]),
                    pull(g),
                    g,
                )
            )
    return rows


def _layer_name(group: str, graph: Graph) -> str:
    layer = layer_of(_module_of_group(group, graph), graph.package)
    return layer.name if layer else ""


def _module_of_group(group: str, graph: Graph) -> str:
    return graph.package if group == "__init__" else f"{graph.package}.{group}"


def draw(graph: Graph, out: Path, width: int = 1300) -> None:
    from PIL import Image, ImageDraw

    groups, edges = group_edges(graph)
    rows = _layout(graph, groups, edges)
    box_w, box_h, row_gap, top, left = 190, 56, 150, 90, 110
    height = top + len(rows) * (box_h + row_gap) - row_gap + 150
    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)
    title, label, small = _font(26, bold=True), _font(18, bold=True), _font(15)

    boxes: dict[str, tuple[int, int, int, int]] = {}
    row_of: dict[str, int] = {}
    for r, members in enumerate(rows):
        y = top + r * (box_h + row_gap)
        slot = (width - left - 20) / len(members)
        for i, g in enumerate(members):
            x = int(left + slot * i + (slot - box_w) / 2)
            boxes[g], row_of[g] = (x, y, x + box_w, y + box_h), r
        layer = layer_of(_module_of_group(members[0], graph), graph.package)
        d.text(
            (12, y + box_h / 2),
            f"layer {layer.rank}" if layer else "no layer",
            font=small,
            fill="#555",
            anchor="lm",
        )

    def centre(g: str) -> float:
        return (boxes[g][0] + boxes[g][2]) / 2

    # Arrow ends spread along each box side, ordered by where the other end is, so they do not cross there.
    sides: dict[tuple[str, str], list[GroupEdge]] = defaultdict(list)
    for e in edges:
        if row_of[e.source] != row_of[e.target]:
            down = row_of[e.source] < row_of[e.target]
            sides[(e.source, "bottom" if down else "top")].append(e)
            sides[(e.target, "top" if down else "bottom")].append(e)

    def anchor(g: str, e: GroupEdge) -> Point:
        x0, y0, x1, y1 = boxes[g]
        other = e.target if g == e.source else e.source
        side = "bottom" if row_of[other] > row_of[g] else "top"
        peers = sorted(sides[(g, side)], key=lambda p: centre(p.target if g == p.source else p.source))
        frac = (peers.index(e) + 1) / (len(peers) + 1)
        return (x0 + frac * (x1 - x0), y1 if side == "bottom" else y0)

    # Arrows that skip rows pass the rows in between through the gaps between boxes, never behind one.
    passing: dict[int, list[tuple[float, GroupEdge]]] = defaultdict(list)
    for e in edges:
        if row_of[e.source] == row_of[e.target]:
            continue
        (sx, sy), (tx, ty) = anchor(e.source, e), anchor(e.target, e)
        lo, hi = sorted((row_of[e.source], row_of[e.target]))
        for r in range(lo + 1, hi):
            yc = top + r * (box_h + row_gap) + box_h / 2
            passing[r].append((sx + (tx - sx) * (yc - sy) / (ty - sy), e))
    through: dict[tuple[int, GroupEdge], float] = {}
    for r, items in passing.items():
        edges_x = sorted(x for g in rows[r] for x in (boxes[g][0], boxes[g][2]))
        gaps = list(zip([0.0, *edges_x[1::2]], [*edges_x[0::2], float(width)], strict=False))
        gaps[0] = (left - 10.0, gaps[0][1])
        in_gap: dict[int, list[tuple[float, GroupEdge]]] = defaultdict(list)
        for x, e in items:
            best = min(
                range(len(gaps)),
                key=lambda i: (
                    0 if gaps[i][0] <= x <= gaps[i][1] else min(abs(x - gaps[i][0]), abs(x - gaps[i][1]))
                ),
            )
            in_gap[best].append((x, e))
        for i, members in in_gap.items():
            lo_x, hi_x = gaps[i][0] + 16, gaps[i][1] - 16
            members.sort(key=lambda m: m[0])
            step = min(16.0, (hi_x - lo_x) / max(1, len(members)))
            xs = [min(max(x, lo_x), hi_x) for x, _ in members]
            for k in range(1, len(xs)):
                xs[k] = max(xs[k], xs[k - 1] + step)
            overflow = xs[-1] - hi_x
            xs = [x - max(0.0, overflow) for x in xs]
            for x, (_, e) in zip(xs, members, strict=False):
                through[(r, e)] = x

    labels: list[tuple[Point, Point, GroupEdge]] = []  # the stretch of arrow a number may sit on
    for e in sorted(edges, key=lambda e: e.violation):  # red on top
        colour = "#d11" if e.violation else ("#333" if e.runtime else "#999")
        row = rows[row_of[e.source]]
        if (
            e.target in row and abs(row.index(e.source) - row.index(e.target)) == 1
        ):  # neighbours: straight across
            (x0, y0, x1, y1), (u0, _, u1, _) = boxes[e.source], boxes[e.target]
            y = (y0 + y1) / 2 + (-9 if u0 > x0 else 9)  # the two directions on separate lines
            pts = [(x1, y), (u0, y)] if u0 > x0 else [(x0, y), (u1, y)]
            leg = (pts[0], pts[1])
        elif row_of[e.source] == row_of[e.target]:  # same row, apart: bow over the boxes in between
            (x0, y0, x1, _), (u0, _, u1, _) = boxes[e.source], boxes[e.target]
            sx, tx = (x1 - 30, u0 + 30) if u0 > x0 else (x0 + 30, u1 - 30)
            lift = 40 + 0.12 * abs(tx - sx)
            pts = [_bezier((sx, y0), ((sx + tx) / 2, y0 - lift), (tx, y0), t / 24) for t in range(25)]
            leg = (pts[12], pts[12])
        else:
            start, end = anchor(e.source, e), anchor(e.target, e)
            step = 1 if row_of[e.target] > row_of[e.source] else -1
            pts = [start]
            for r in range(row_of[e.source] + step, row_of[e.target], step):
                y0 = top + r * (box_h + row_gap)
                ys = (y0 - 12, y0 + box_h + 12) if step > 0 else (y0 + box_h + 12, y0 - 12)
                pts += [(through[(r, e)], ys[0]), (through[(r, e)], ys[1])]
            pts.append(end)
            leg = (pts[-2], pts[-1])  # the last leg, next to the box it points at
        _line(d, pts, colour, 4 if e.violation else 2, dashed=not e.runtime)
        _arrowhead(d, pts[-2], pts[-1], colour)
        labels.append((*leg, e))
    for g, (x0, y0, x1, y1) in boxes.items():
        layer = layer_of(_module_of_group(g, graph), graph.package)
        count = sum(1 for m in graph.modules if group_of(m, graph) == g)
        d.rounded_rectangle(
            (x0, y0, x1, y1), 10, fill="#e8f0fb" if layer else "#fde2e2", outline="#35577d", width=2
        )
        d.text(((x0 + x1) / 2, y0 + 21), g, font=label, fill="#123", anchor="mm")
        d.text(
            ((x0 + x1) / 2, y0 + 43),
            f"{count} module{'s' * (count != 1)}",
            font=small,
            fill="#456",
            anchor="mm",
        )
    taken: list[tuple[float, float, float, float]] = []
    for a, b, e in labels:
        text = str(e.count)
        # Slide the number along its leg until it overlaps no number already placed.
        for t in (0.5, 0.35, 0.65, 0.2, 0.8, 0.5):
            x, y = _lerp(a, b, t)
            bx = d.textbbox((x, y), text, font=small, anchor="mm")
            if not any(
                bx[0] < o[2] + 6 and o[0] < bx[2] + 6 and bx[1] < o[3] + 4 and o[1] < bx[3] + 4 for o in taken
            ):
                break
        taken.append(bx)
        d.rectangle(
            (bx[0] - 4, bx[1] - 2, bx[2] + 4, bx[3] + 2),
            fill="white",
            outline="#d11" if e.violation else "#999",
        )
        d.text((x, y), text, font=small, fill="#d11" if e.violation else "#222", anchor="mm")

    d.text((width / 2, 36), f"{graph.package} imports, by layer", font=title, fill="#111", anchor="mm")
    legend_y = height - 70
    items = [
        ("#333", False, "imports at load time"),
        ("#999", True, "only deferred (in a function) or TYPE_CHECKING"),
        ("#d11", False, "breaks the layer rule (upward or between siblings)"),
    ]
    x = 30
    for colour, dashed, text in items:
        _line(d, [(x, legend_y), (x + 46, legend_y)], colour, 3, dashed=dashed)
        d.text((x + 56, legend_y), text, font=small, fill="#222", anchor="lm")
        x += 80 + int(d.textlength(text, font=small))
    d.text(
        (30, legend_y + 32),
        "number on an arrow = importing-module -> imported-module pairs behind it; "
        "generated by docs/import_graph.py",
        font=small,
        fill="#555",
        anchor="lm",
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out, optimize=True)


def _lerp(a: Point, b: Point, t: float) -> Point:
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)


def _bezier(a: Point, c: Point, b: Point, t: float) -> Point:
    return _lerp(_lerp(a, c, t), _lerp(c, b, t), t)


def _line(d: ImageDraw.ImageDraw, pts: list[Point], colour: str, width: int, dashed: bool) -> None:
    if not dashed:
        d.line(pts, fill=colour, width=width, joint="curve")
        return
    on, step = True, 9.0
    for a, b in zip(pts, pts[1:], strict=False):
        length = math.dist(a, b)
        pos = 0.0
        while pos < length:
            nxt = min(pos + step, length)
            if on:
                d.line([_lerp(a, b, pos / length), _lerp(a, b, nxt / length)], fill=colour, width=width)
            on = not on if nxt - pos == step else on
            pos = nxt


def _arrowhead(d: ImageDraw.ImageDraw, a: Point, b: Point, colour: str) -> None:
    angle = math.atan2(b[1] - a[1], b[0] - a[0])
    size = 13
    left = (b[0] - size * math.cos(angle - 0.4), b[1] - size * math.sin(angle - 0.4))
    right = (b[0] - size * math.cos(angle + 0.4), b[1] - size * math.sin(angle + 0.4))
    d.polygon([b, left, right], fill=colour)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", action="store_true", help="print the edges instead of drawing")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "import-graph.png")
    parser.add_argument("--width", type=int, default=1300)
    args = parser.parse_args(argv)
    graph = build_graph()
    if args.text:
        print(text_report(graph))
        summary = Counter(e.violation for e in group_edges(graph)[1])
        print(f"\n{summary[False] + summary[True]} arrows, {summary[True]} against the layer rule")
        return 0
    draw(graph, args.out, args.width)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
