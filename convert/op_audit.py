"""Operator audit: does every node of a graph use an ONNX op that CANN's ATC parses at the graph's opset?

ATC looks each node up as `ai.onnx::<opset>::<OpType>` and stops with E19010
when nothing is registered, after minutes of work on a board. The export and
`python -m convert.atc_args --audit` check the graphs against the list in
`convert/atc_onnx_ops.txt` (its header names the source and CANN version)
before anything reaches ATC. Nodes inside `If`/`Loop` branches are checked too.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

SUPPORTED_OPS_FILE = Path(__file__).with_name("atc_onnx_ops.txt")
DEFAULT_DOMAINS = ("", "ai.onnx")


class UnsupportedOpError(ValueError):
    """A graph uses an op ATC cannot parse; the message is one line naming the op and the node."""


@dataclass(frozen=True)
class OpUse:
    """One op type as a graph uses it: how many nodes, the first node's name, and whether ATC parses it."""

    op_type: str
    domain: str
    opset: int
    count: int
    first_node: str
    supported: bool


def _opsets(text: str) -> set[int]:
    versions: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        versions.update(range(int(low), int(high or low) + 1))
    return versions


def supported_ops(path: Path = SUPPORTED_OPS_FILE) -> dict[str, set[int]]:
    """OpType -> opsets ATC parses it at, from `atc_onnx_ops.txt`."""
    table = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            op_type, opsets = line.split("\t")
            table[op_type] = _opsets(opsets)
    return table


def _nodes(graph):
    """Every node, including those of subgraphs (If/Loop/Scan branches)."""
    import onnx

    for node in graph.node:
        yield node
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from _nodes(attribute.g)
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for sub in attribute.graphs:
                    yield from _nodes(sub)


def audit(model, table: dict[str, set[int]] | None = None) -> list[OpUse]:
    """One OpUse per (domain, op type) of an onnx.ModelProto, in order of first use."""
    table = supported_ops() if table is None else table
    opsets = {o.domain: o.version for o in model.opset_import}
    counts: Counter = Counter()
    first: dict[tuple[str, str], str] = {}
    for index, node in enumerate(_nodes(model.graph)):
        key = (node.domain, node.op_type)
        counts[key] += 1
        first.setdefault(key, node.name or f"#{index}")
    uses = []
    for (domain, op_type), count in counts.items():
        standard = domain in DEFAULT_DOMAINS
        names = DEFAULT_DOMAINS if standard else (domain,)
        opset = next((opsets[name] for name in names if name in opsets), 0)
        supported = standard and opset in table.get(op_type, set())
        uses.append(OpUse(op_type, domain or "ai.onnx", opset, count, first[(domain, op_type)], supported))
    return uses


def check(path: Path, table: dict[str, set[int]] | None = None) -> list[OpUse]:
    """Audit an ONNX file; raises UnsupportedOpError naming the first op ATC cannot parse and its node."""
    import onnx

    uses = audit(onnx.load(str(path), load_external_data=False), table)
    bad = [use for use in uses if not use.supported]
    if bad:
        use = bad[0]
        more = f" (and {len(bad) - 1} more op type(s): {', '.join(u.op_type for u in bad[1:])})" if len(bad) > 1 else ""
        raise UnsupportedOpError(
            f"{path.name}: op {use.domain}::{use.op_type} at opset {use.opset} (node '{use.first_node}', "
            f"{use.count} node(s)) is not parsed by CANN's ATC (see {SUPPORTED_OPS_FILE.name}){more}; "
            "rewrite it with supported ops in convert/submodels.py"
        )
    return uses
