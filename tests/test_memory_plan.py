"""The arena plan: no two buffers that are live at once overlap, and the arena stays near the lower bound."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from tinysplit.compiler.ir import Graph, Node, Tensor
from tinysplit.passes.memory_plan import MemoryPlan, make_plan

SHARED = Path(__file__).resolve().parents[2] / "shared" / "models"


def no_scratch(graph: Graph, node: Node) -> int:
    return 0


def lifetimes(graph: Graph) -> dict[str, tuple[int, int]]:
    spans: dict[str, tuple[int, int]] = {}
    for step, node in enumerate(graph.nodes()):
        for t in node.outputs:
            spans[t] = (step, step)
        for t in node.inputs:
            if t in spans:
                spans[t] = (spans[t][0], step)
        spans[f"scratch:{node.name}"] = (step, step)
    return spans


def assert_valid(graph: Graph, plan: MemoryPlan) -> None:
    spans = lifetimes(graph)
    sizes = {t: graph.tensors[t].nbytes for t in plan.offsets if t in graph.tensors}
    sizes |= {f"scratch:{n}": b for n, b in plan.scratch_bytes.items() if b}
    for a, b in itertools.combinations(plan.offsets, 2):
        if plan.in_place.get(a) == b or plan.in_place.get(b) == a:
            continue
        (fa, la), (fb, lb) = spans[a], spans[b]
        if la < fb or lb < fa:
            continue
        oa, ob = plan.offsets[a], plan.offsets[b]
        assert oa + sizes[a] <= ob or ob + sizes[b] <= oa, f"{a} and {b} overlap while both live"
    for name, offset in plan.offsets.items():
        assert offset % 8 == 0
        assert offset + sizes[name] <= plan.arena_bytes
    assert plan.lower_bound_bytes <= plan.arena_bytes <= plan.activation_bytes + sum(plan.scratch_bytes.values())


def chain(sizes: list[int], skip: bool = False) -> Graph:
    """x -> clip -> conv-like steps; with skip, the first activation is also added at the end."""
    g = Graph("chain")
    g.add_tensor(Tensor("x", (1, sizes[0]), "int8"))
    g.inputs = ["x"]
    prev = "x"
    for i, size in enumerate(sizes[1:]):
        g.add_tensor(Tensor(f"w{i}", (size, g.tensors[prev].shape[1]), "int8", data=np.zeros((1,), np.int8)))
        g.add_tensor(Tensor(f"t{i}", (1, size), "int8"))
        g.add_node(Node(f"fc{i}", "fully_connected", [prev, f"w{i}"], [f"t{i}"]))
        prev = f"t{i}"
    if skip:
        g.add_tensor(Tensor("s", g.tensors[prev].shape, "int8"))
        g.add_tensor(Tensor("y", g.tensors[prev].shape, "int8"))
        g.add_node(Node("skip_add", "add", [prev, "t0"], ["s"]))
        g.add_node(Node("last", "clip", ["s"], ["y"], {"act_min": 0.0}))
    else:
        g.add_tensor(Tensor("y", g.tensors[prev].shape, "int8"))
        g.add_node(Node("last", "clip", [prev], ["y"], {"act_min": 0.0}))
    g.outputs = ["y"]
    return g


@pytest.mark.parametrize("skip", [False, True])
@pytest.mark.parametrize("sizes", [[16, 64, 32, 128, 8], [100, 100, 100, 100], [8, 1000, 24, 1000, 16, 1000]])
def test_plan_is_valid_and_tight_on_chains(sizes: list[int], skip: bool) -> None:
    if skip and sizes[1] != sizes[-1]:
        sizes = [*sizes[:-1], sizes[1]]
    g = chain(sizes, skip)
    plan = make_plan(g, no_scratch)
    assert_valid(g, plan)
    if not skip:  # a chain needs exactly two live buffers at a time
        assert plan.arena_bytes <= plan.lower_bound_bytes + 8 * 2


def test_scratch_is_planned_only_during_its_step() -> None:
    g = chain([16, 64, 32, 8])
    plan = make_plan(g, lambda graph, node: 40 if node.op == "fully_connected" else 0)
    assert_valid(g, plan)
    assert {k for k, v in plan.scratch_bytes.items() if v} == {"fc0", "fc1", "fc2"}
    assert all(f"scratch:fc{i}" in plan.offsets for i in range(3))


def test_elementwise_works_in_place_when_its_input_dies() -> None:
    g = chain([16, 64, 32], skip=False)
    plan = make_plan(g, no_scratch)
    # the final clip reads t1 (dies there) but writes the graph output: caller's buffer, no sharing
    assert plan.in_place == {}
    g2 = chain([16, 32, 64, 32], skip=True)
    plan2 = make_plan(g2, no_scratch)
    assert plan2.in_place.get("s") in {"t2", "t0"}
    assert_valid(g2, plan2)


@pytest.mark.parametrize(
    "name", ["resnet8_cifar10_int8.onnx", "dscnn_kws_int8.onnx", "ad01_toycar_int8.onnx", "resnet8_cifar10_f32.onnx"]
)
def test_real_models_arena_close_to_lower_bound(name: str) -> None:
    if not (SHARED / name).exists():
        pytest.skip(f"shared models folder {SHARED} not present")
    from tinysplit.backends.lower import scratch_bytes
    from tinysplit.compiler import frontend
    from tinysplit.passes.canonicalize import canonicalize

    g = canonicalize(frontend.load(SHARED / name))
    plan = make_plan(g, scratch_bytes)
    assert_valid(g, plan)
    assert plan.arena_bytes <= 1.10 * plan.lower_bound_bytes, (plan.arena_bytes, plan.lower_bound_bytes)
