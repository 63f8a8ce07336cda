"""A version's family tree (base → tuned → quantized) as an inline SVG graph.

Versions name their parent by reference (``NAME@N``, the ``parent`` field of the catalog
record). The family of a version is every version reachable along parent links, up and
down. Generations are laid out left to right; each node links to its version page. A parent
the catalog does not hold (an import's upstream source) is drawn dashed, without a link.
The SVG uses presentation attributes and classes only (the console's CSP allows no inline
styles), and a text list beside it says the same for screen readers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from markupsafe import Markup, escape

from modelyard.catalog.records import ModelVersion

MAX_NODES = 60
NODE_W, NODE_H = 190, 52
COL_GAP, ROW_GAP = 70, 18
PAD = 10


@dataclass(frozen=True)
class LineageNode:
    ref: str
    origin: str
    stage: str
    known: bool
    depth: int
    row: int

    @property
    def href(self) -> str | None:
        if not self.known or "@" not in self.ref:
            return None
        name, number = self.ref.rsplit("@", 1)
        return f"/console/models/{name}/{number}"

    @property
    def x(self) -> int:
        return PAD + self.depth * (NODE_W + COL_GAP)

    @property
    def y(self) -> int:
        return PAD + self.row * (NODE_H + ROW_GAP)


@dataclass(frozen=True)
class LineageEdge:
    parent: str
    child: str
    label: str


@dataclass(frozen=True)
class Lineage:
    focus: str
    nodes: tuple[LineageNode, ...]
    edges: tuple[LineageEdge, ...]
    truncated: bool = False

    @property
    def width(self) -> int:
        depth = max((n.depth for n in self.nodes), default=0)
        return 2 * PAD + (depth + 1) * NODE_W + depth * COL_GAP

    @property
    def height(self) -> int:
        rows = max((n.row for n in self.nodes), default=0)
        return 2 * PAD + (rows + 1) * NODE_H + rows * ROW_GAP


def _family(versions: dict[str, ModelVersion], focus: str) -> list[str]:
    """Refs linked to ``focus`` by parent links (both ways), focus's component only."""
    children: dict[str, list[str]] = defaultdict(list)
    for ref, version in versions.items():
        if version.parent:
            children[version.parent].append(ref)
    seen: list[str] = []
    todo = [focus]
    while todo and len(seen) < MAX_NODES:
        ref = todo.pop()
        if ref in seen:
            continue
        seen.append(ref)
        parent = versions[ref].parent if ref in versions else None
        if parent:
            todo.append(parent)
        todo.extend(sorted(children.get(ref, ()), reverse=True))
    return seen


def lineage_of(
    versions: Iterable[ModelVersion], focus: str, stages: dict[str, str] | None = None
) -> Lineage:
    """The family of ``focus`` laid out in generations (roots at depth 0)."""
    by_ref = {v.ref: v for v in versions}
    stages = stages or {}
    family = _family(by_ref, focus)
    members = set(family)
    depth: dict[str, int] = {}

    def depth_of(ref: str, trail: frozenset[str] = frozenset()) -> int:
        if ref in depth:
            return depth[ref]
        parent = by_ref[ref].parent if ref in by_ref else None
        if not parent or parent not in members or parent in trail:
            depth[ref] = 0
        else:
            depth[ref] = depth_of(parent, trail | {ref}) + 1
        return depth[ref]

    rows: dict[int, int] = defaultdict(int)
    nodes = []
    for ref in sorted(family, key=lambda r: (depth_of(r), r)):
        level = depth_of(ref)
        version = by_ref.get(ref)
        nodes.append(
            LineageNode(
                ref=ref,
                origin=version.origin if version else "upstream",
                stage=stages.get(ref, ""),
                known=version is not None,
                depth=level,
                row=rows[level],
            )
        )
        rows[level] += 1
    edges = tuple(
        LineageEdge(by_ref[ref].parent or "", ref, by_ref[ref].origin)
        for ref in family
        if ref in by_ref and by_ref[ref].parent in members
    )
    return Lineage(focus, tuple(nodes), edges, truncated=len(family) >= MAX_NODES)


def _node_svg(node: LineageNode, focus: str) -> str:
    classes = ["lineage-node"]
    if node.ref == focus:
        classes.append("focus")
    if not node.known:
        classes.append("external")
    detail = " · ".join(p for p in (node.origin, node.stage) if p)
    body = (
        f'<rect x="{node.x}" y="{node.y}" width="{NODE_W}" height="{NODE_H}" rx="6"></rect>'
        f'<text x="{node.x + 10}" y="{node.y + 21}" class="lineage-ref">{escape(node.ref)}</text>'
        f'<text x="{node.x + 10}" y="{node.y + 40}" class="lineage-detail">{escape(detail)}</text>'
    )
    title = f"<title>{escape(node.ref)} ({escape(detail)})</title>"
    group = f'<g class="{" ".join(classes)}">{title}{body}</g>'
    if node.href and node.ref != focus:
        return f'<a href="{escape(node.href)}" class="lineage-link">{group}</a>'
    return group


def _edge_svg(edge: LineageEdge, nodes: dict[str, LineageNode]) -> str:
    parent, child = nodes[edge.parent], nodes[edge.child]
    x1, y1 = parent.x + NODE_W, parent.y + NODE_H // 2
    x2, y2 = child.x - 4, child.y + NODE_H // 2
    middle = (x1 + x2) // 2
    return (
        f'<path class="lineage-edge" d="M{x1},{y1} C{middle},{y1} {middle},{y2} {x2},{y2}" '
        f'fill="none" marker-end="url(#lineage-arrow)"></path>'
        f'<text class="lineage-edge-label" x="{middle}" y="{(y1 + y2) // 2 - 4}" '
        f'text-anchor="middle">{escape(edge.label)}</text>'
    )


def lineage_svg(lineage: Lineage) -> Markup:
    """The graph as an ``<svg>`` element (all text escaped)."""
    nodes = {n.ref: n for n in lineage.nodes}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage" id="lineage-graph" '
        f'width="{lineage.width}" height="{lineage.height}" '
        f'viewBox="0 0 {lineage.width} {lineage.height}" role="group" '
        f'aria-label="Lineage of {escape(lineage.focus)}">',
        '<defs><marker id="lineage-arrow" viewBox="0 0 10 10" refX="9" refY="5" '
        'markerWidth="8" markerHeight="8" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" class="lineage-arrow-head"></path></marker></defs>',
    ]
    parts += [_edge_svg(e, nodes) for e in lineage.edges]
    parts += [_node_svg(n, lineage.focus) for n in lineage.nodes]
    parts.append("</svg>")
    return Markup("".join(parts))
