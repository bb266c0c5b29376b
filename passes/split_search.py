"""Where to cut a model between a device and a server: candidates, cost model, exhaustive search.

Candidate k runs `graph.nodes()[:k]` on the device (k = 0: everything on the server, the device
sends its input; k = N: everything on the device, nothing is sent). For every candidate the model
predicts, from the pieces `passes.split.split_graph` actually cuts:

- device time and energy: compiler.cost over the head's nodes, at the target's clock and power;
- head flash (weights + code) and RAM (planned arena + head inputs/outputs + one datagram buffer
  for the message), checked against the target minus its reserve;
- the sealed request (server/wire.py) and its answer carried by CoAP/UDP over the link
  (compiler.links): seconds, radio joules, message bytes, on-air bytes;
- server time: compiler.cost over the tail's nodes with the host profile ("host" target);
- leakage: distance correlation between the model input and the sent tensors on calibration
  samples (compiler.privacy_metrics); 0 when nothing is sent.

End-to-end latency = device + uplink + server + downlink (the device gets the answer). Device
energy = compute + radio. The search evaluates every candidate, drops those that break a
constraint (flash, RAM, at most 8 tensors on the wire, --max-bytes, --max-leakage, in that order),
and takes the minimum of the objective (ties: lower leakage, fewer bytes, earlier cut): the optimum
under the model, by construction. The Pareto front over (latency, energy, bytes, leakage) of the
candidates that fit is reported beside it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import numpy as np

from tinysplit.backends.lower import scratch_bytes
from tinysplit.compiler import cost, quant, reference
from tinysplit.compiler.calibration import batched
from tinysplit.compiler.errors import CompileError
from tinysplit.compiler.ir import Graph, Quant
from tinysplit.compiler.links import Link, Transfer, answer_bytes, exchange, radio_power, request_bytes
from tinysplit.compiler.privacy_metrics import dcor_u_centered, u_centered_distances
from tinysplit.compiler.targets import Target, load_target
from tinysplit.passes.memory_plan import make_plan
from tinysplit.passes.quantize import activation_quant
from tinysplit.passes.split import cut_tensors, split_graph

Objective = Literal["latency", "energy"]
OBJECTIVES: tuple[Objective, ...] = ("latency", "energy")
MAX_WIRE_TENSORS = 8  # server/wire.py and server/bundle.py carry 1..8 cut tensors
SAMPLES = 128
BATCH = 32


@dataclass(frozen=True)
class Candidate:
    index: int  # k: nodes[:k] run on the device
    after: str | None  # the last device node, None when the device only sends its input
    after_op: str | None
    cut: tuple[str, ...]  # tensors crossing to the server (empty: all on the device)
    nodes: int  # N, the graph's node count

    @property
    def label(self) -> str:
        if self.index == self.nodes:
            return "all on device"
        return "all on server (send the input)" if self.after is None else f"after #{self.index - 1} {self.after_op}"


@dataclass
class Evaluation:
    candidate: Candidate
    device_s: float
    uplink_s: float
    server_s: float
    downlink_s: float
    compute_j: float | None
    radio_j: float
    cut_bytes: int  # int8 tensor data sent
    wire_bytes: int  # CoAP messages up: sealed request (COSE/CBOR) + CoAP headers
    air_bytes: int  # on air up, all link headers included
    frames: int
    flash_bytes: int
    ram_bytes: int
    leakage: float | None
    problems: list[str] = field(default_factory=list)  # why it cannot be deployed (memory, wire)

    @property
    def latency_s(self) -> float:
        return self.device_s + self.uplink_s + self.server_s + self.downlink_s

    @property
    def energy_j(self) -> float | None:
        return None if self.compute_j is None else self.compute_j + self.radio_j

    @property
    def fits(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Constraints:
    max_bytes: int | None = None  # on Evaluation.wire_bytes
    max_leakage: float | None = None


@dataclass
class SplitSetup:
    """Everything the cost model needs beside the graph."""

    target: Target
    link: Link
    server: Target
    model_id: str
    cut_quant: dict[str, Quant]  # float32 crossing tensors -> int8 quantization for sending
    leakage: dict[int, float] | None  # candidate index -> distance correlation
    samples: str  # what the calibration samples were, for the report


@dataclass
class SplitResult:
    graph_name: str
    setup: SplitSetup
    evaluations: list[Evaluation]
    chosen: int
    objective: Objective
    constraints: Constraints
    pareto: list[int]
    forced: str | None = None  # "none", "input" or a tensor name when --split forced the cut

    @property
    def choice(self) -> Evaluation:
        return self.evaluations[self.chosen]


# candidates ---------------------------------------------------------------------------------
def candidates(graph: Graph) -> list[Candidate]:
    nodes = list(graph.nodes())
    return [
        Candidate(
            k,
            nodes[k - 1].name if k else None,
            nodes[k - 1].op if k else None,
            tuple(cut_tensors(graph, k)),
            len(nodes),
        )
        for k in range(len(nodes) + 1)
    ]


def resolve_split(graph: Graph, spec: str) -> int:
    """--split none | input | TENSOR -> the candidate index (TENSOR: the cut right after it is produced)."""
    nodes = [n.name for n in graph.nodes()]
    if spec == "none":
        return len(nodes)
    if spec == "input" or spec in graph.inputs:
        return 0
    producer = graph.producer(spec) if spec in graph.tensors else None
    if producer is None:
        names = tuple(t.name for t in graph.activations())
        raise CompileError(
            f"--split {spec!r}: not auto, none, input or one of the model's {len(names)} activations "
            f"({_names(names[:6])}{', ...' if len(names) > 6 else ''}; tinysplit inspect lists them)"
        )
    return nodes.index(producer.name) + 1


# calibration samples and leakage --------------------------------------------------------------
def calibration_samples(
    graph: Graph, data: dict[str, np.ndarray] | None = None, n: int = SAMPLES, seed: int = 0
) -> dict[str, np.ndarray]:
    """[n, *shape] per graph input: `data` (float, real values; quantized for int8 inputs) or seeded random.

    Random: int8 inputs uniform over all 256 codes, float32 inputs standard normal.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for name in graph.inputs:
        t = graph.tensors[name]
        if data is not None:
            real = np.asarray(data[name], np.float32).reshape(-1, *t.shape)
            out[name] = real if t.dtype == "float32" else quant.quantize(real, _require_quant(t.name, t.quant))
        elif t.dtype == "int8":
            out[name] = rng.integers(-128, 128, (n, *t.shape), dtype=np.int8)
        else:
            out[name] = rng.standard_normal((n, *t.shape)).astype(np.float32)
    return out


def _require_quant(name: str, q: Quant | None) -> Quant:
    if q is None:
        raise CompileError(f"int8 input {name!r} has no quantization parameters")
    return q


def activations_on(graph: Graph, samples: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every activation's value per sample, [n, *shape], from the reference interpreter."""
    count = len(next(iter(samples.values())))
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, count, BATCH):
        size = min(BATCH, count - start)
        g = batched(graph, size)
        if g is not None:
            feeds = {k: v[start : start + size].reshape(size, *v.shape[2:]) for k, v in samples.items()}
            values = reference.run(g, feeds, keep_all=True)
            runs = [{k: v[i : i + 1] for k, v in values.items()} for i in range(size)]
        else:
            runs = [
                reference.run(graph, {k: v[i] for k, v in samples.items()}, keep_all=True)
                for i in range(start, start + size)
            ]
        for run in runs:
            for k, v in run.items():
                if not graph.tensors[k].is_constant:
                    parts.setdefault(k, []).append(v[None])
    return {k: np.concatenate(v) for k, v in parts.items()}


def real_values(graph: Graph, name: str, values: np.ndarray) -> np.ndarray:
    t = graph.tensors[name]
    return values.astype(np.float32) if t.quant is None else quant.dequantize(values, t.quant).astype(np.float32)


def cut_quants(graph: Graph, values: dict[str, np.ndarray]) -> dict[str, Quant]:
    """int8 quantization (per tensor, asymmetric, min/max of the samples) for every float32 activation."""
    return {
        k: activation_quant(float(v.min()), float(v.max()))
        for k, v in values.items()
        if graph.tensors[k].dtype == "float32"
    }


def leakage_scores(graph: Graph, values: dict[str, np.ndarray], cands: list[Candidate]) -> dict[int, float]:
    """Bias-corrected distance correlation between the model input and what each candidate sends (0: nothing sent)."""

    def joined(names: tuple[str, ...] | list[str]) -> np.ndarray:
        flat = [real_values(graph, t, values[t]).reshape(len(values[t]), -1) for t in names]
        return np.concatenate(flat, axis=1)

    a = u_centered_distances(joined(graph.inputs))
    scores: dict[tuple[str, ...], float] = {}
    for c in cands:
        if c.cut and c.cut not in scores:
            scores[c.cut] = dcor_u_centered(a, u_centered_distances(joined(c.cut)))
    return {c.index: scores[c.cut] if c.cut else 0.0 for c in cands}


def model_id(graph: Graph) -> str:
    """A model id the wire format accepts (1..64 of [A-Za-z0-9_.-]) from the graph's name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", graph.name)[:64] or "model"


def prepare(
    graph: Graph,
    target: Target,
    link: Link,
    samples: dict[str, np.ndarray] | None = None,
    samples_note: str | None = None,
    server: Target | None = None,
) -> SplitSetup:
    """Run the calibration samples once: quantization of float cuts and leakage of every candidate."""
    radio_power(target, link)  # fail early when the target has no such radio
    if samples is None:
        samples = calibration_samples(graph)
        samples_note = f"{SAMPLES} seeded random inputs (seed 0): no real data given"
    values = activations_on(graph, samples)
    count = len(next(iter(samples.values())))
    return SplitSetup(
        target=target,
        link=link,
        server=server or load_target("host"),
        model_id=model_id(graph),
        cut_quant=cut_quants(graph, values),
        leakage=leakage_scores(graph, values, candidates(graph)),
        samples=samples_note or f"{count} calibration samples",
    )


# cost model ---------------------------------------------------------------------------------
def evaluate(graph: Graph, cand: Candidate, setup: SplitSetup) -> Evaluation:
    target, link = setup.target, setup.link
    head, tail = split_graph(graph, cand.index, setup.cut_quant)
    device_s = cost.seconds(head, head.nodes(), target)
    server_s = cost.seconds(tail, tail.nodes(), setup.server) if cand.cut else 0.0
    compute_j = None if target.cost.active_w is None else cost.joules(device_s, target)
    sent = [head.tensors[t] for t in tail.inputs]
    problems = []
    if cand.cut:
        if any(t.dtype != "int8" or t.quant is None for t in sent):
            problems.append("a float32 cut tensor has no quantization for the wire")
        cut = [(t.shape, *t.quant.scalar()) for t in sent if t.quant is not None]
        request = request_bytes(cut, setup.model_id)
        answer = answer_bytes([tail.tensors[o].shape for o in tail.outputs], setup.model_id)
        up, down = exchange(link, radio_power(target, link), request, answer)
    else:
        up = down = Transfer()
    plan = make_plan(head, scratch_bytes)
    layers = len(list(head.nodes()))
    c = target.cost
    flash = sum(t.nbytes for t in head.constants()) + (c.code_flash_bytes if layers else 0)
    ram = plan.arena_bytes + plan.io_bytes + (link.mtu_bytes if cand.cut else 0)
    flash_budget, ram_budget = target.flash_bytes - c.reserved_flash_bytes, target.ram_bytes - c.reserved_ram_bytes
    if flash > flash_budget:
        problems.append(f"flash {flash:,} B > {flash_budget:,} B")
    if ram > ram_budget:
        problems.append(f"RAM {ram:,} B > {ram_budget:,} B")
    if len(cand.cut) > MAX_WIRE_TENSORS:
        problems.append(f"{len(cand.cut)} cut tensors > {MAX_WIRE_TENSORS} the wire format carries")
    return Evaluation(
        candidate=cand,
        device_s=device_s,
        uplink_s=up.seconds,
        server_s=server_s,
        downlink_s=down.seconds,
        compute_j=compute_j,
        radio_j=up.joules + down.joules,
        cut_bytes=sum(t.nbytes for t in sent),
        wire_bytes=up.message_bytes,
        air_bytes=up.air_bytes,
        frames=up.frames,
        flash_bytes=flash,
        ram_bytes=ram,
        leakage=None if setup.leakage is None else setup.leakage[cand.index],
        problems=problems,
    )


# search -------------------------------------------------------------------------------------
def objective_value(e: Evaluation, objective: Objective) -> float:
    if objective == "latency":
        return e.latency_s
    if e.energy_j is None:
        raise CompileError("--objective energy: the target's [cost] table has no active_w")
    return e.energy_j


@dataclass(frozen=True)
class _Check:
    name: str  # as the user wrote it
    holds: Callable[[Evaluation], bool]
    metric: str
    value: Callable[[Evaluation], float]
    unit: str


def _checks(setup: SplitSetup, constraints: Constraints) -> list[_Check]:
    t, c = setup.target, setup.target.cost
    checks = [
        _Check(
            f"flash of {t.name} ({t.flash_bytes - c.reserved_flash_bytes:,} B after a {c.reserved_flash_bytes:,} B "
            "reserve)",
            lambda e: not any(p.startswith("flash") for p in e.problems),
            "head flash",
            lambda e: e.flash_bytes,
            " B",
        ),
        _Check(
            f"RAM of {t.name} ({t.ram_bytes - c.reserved_ram_bytes:,} B after a {c.reserved_ram_bytes:,} B reserve)",
            lambda e: not any(p.startswith("RAM") for p in e.problems),
            "head RAM",
            lambda e: e.ram_bytes,
            " B",
        ),
        _Check(
            f"wire format (at most {MAX_WIRE_TENSORS} int8 tensors)",
            lambda e: e.fits,
            "tensor count",
            lambda e: len(e.candidate.cut),
            "",
        ),
    ]
    if constraints.max_bytes is not None:
        limit = constraints.max_bytes
        checks.append(
            _Check(
                f"max-bytes {limit:,}", lambda e: e.wire_bytes <= limit, "message size", lambda e: e.wire_bytes, " B"
            )
        )
    if constraints.max_leakage is not None:
        if setup.leakage is None:
            raise CompileError("--max-leakage needs leakage scores, which need calibration samples")
        bound = constraints.max_leakage
        checks.append(
            _Check(
                f"max-leakage {bound:g}",
                lambda e: e.leakage is not None and e.leakage <= bound,
                "leakage",
                lambda e: e.leakage if e.leakage is not None else 1.0,
                "",
            )
        )
    return checks


def feasible(evaluations: list[Evaluation], setup: SplitSetup, constraints: Constraints) -> list[Evaluation]:
    """The candidates meeting every constraint; CompileError naming the first one nothing meets."""
    pool, passed = evaluations, list[str]()
    for check in _checks(setup, constraints):
        ok = [e for e in pool if check.holds(e)]
        if not ok:
            best = min(pool, key=check.value)
            among = f" among the {len(pool)} candidates meeting {', '.join(passed)}" if passed else ""
            raise CompileError(
                f"{check.name}: no candidate satisfies it{among}; the lowest {check.metric} is "
                f"{_fmt(check.value(best))}{check.unit}, {best.candidate.label} (cut: {_names(best.candidate.cut)})"
            )
        pool = ok
        passed.append(check.name.split(" (")[0])
    return pool


def _names(tensors: tuple[str, ...], width: int = 48) -> str:
    return ", ".join(t if len(t) <= width else t[: width - 3] + "..." for t in tensors) or "-"


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if float(v).is_integer() and abs(v) >= 10 else f"{v:.3g}"


def choose(evaluations: list[Evaluation], setup: SplitSetup, objective: Objective, constraints: Constraints) -> int:
    """Index of the best feasible candidate (ties: lower leakage, fewer bytes, earlier cut)."""
    pool = feasible(evaluations, setup, constraints)
    best = min(pool, key=lambda e: (objective_value(e, objective), e.leakage or 0.0, e.wire_bytes, e.candidate.index))
    return best.candidate.index


def pareto_front(evaluations: list[Evaluation]) -> list[int]:
    """Candidates that fit and that no other fitting candidate beats or equals on every metric while beating on one."""

    def metrics(e: Evaluation) -> tuple[float, ...]:
        return (e.latency_s, e.energy_j or 0.0, float(e.wire_bytes), e.leakage or 0.0)

    fit = [e for e in evaluations if e.fits]
    front = []
    for e in fit:
        m = metrics(e)
        dominated = any(all(a <= b for a, b in zip(metrics(o), m, strict=True)) and metrics(o) != m for o in fit)
        if not dominated:
            front.append(e.candidate.index)
    return front


def search(
    graph: Graph,
    setup: SplitSetup,
    objective: Objective = "latency",
    constraints: Constraints | None = None,
    forced: str | None = None,
) -> SplitResult:
    """Evaluate every candidate; choose the optimum (or the forced cut) and the Pareto front."""
    if objective not in OBJECTIVES:
        raise CompileError(f"--objective {objective!r}: choose latency or energy")
    constraints = constraints or Constraints()
    evaluations = [evaluate(graph, c, setup) for c in candidates(graph)]
    chosen = resolve_split(graph, forced) if forced else choose(evaluations, setup, objective, constraints)
    return SplitResult(
        graph.name, setup, evaluations, chosen, objective, constraints, pareto_front(evaluations), forced
    )


def plan_split(
    graph: Graph,
    target: Target,
    link: Link,
    split: str = "auto",
    objective: str = "latency",
    max_bytes: int | None = None,
    max_leakage: float | None = None,
    data: dict[str, np.ndarray] | None = None,
    data_note: str | None = None,
) -> SplitResult:
    """The pipeline's entry point: --split auto|none|input|TENSOR with its objective and constraints.

    `data`: real-valued calibration samples per graph input ([n, *shape] or [n, *shape[1:]]), quantized
    here for int8 inputs; without it, seeded random inputs (said so in the report).
    """
    if objective not in OBJECTIVES:
        raise CompileError(f"--objective {objective!r}: choose latency or energy")
    if max_leakage is not None and not 0.0 <= max_leakage <= 1.0:
        raise CompileError(f"--max-leakage {max_leakage}: a distance correlation bound in [0, 1]")
    if max_bytes is not None and max_bytes < 0:
        raise CompileError(f"--max-bytes {max_bytes}: must not be negative")
    if split != "auto":
        resolve_split(graph, split)  # an unknown tensor fails before the calibration run
    samples = None if data is None else calibration_samples(graph, data)
    setup = prepare(graph, target, link, samples, data_note)
    constraints = Constraints(max_bytes, max_leakage)
    return search(graph, setup, cast(Objective, objective), constraints, None if split == "auto" else split)


def as_dict(e: Evaluation) -> dict[str, Any]:
    """One candidate's figures in SI units (seconds, joules, bytes), for the report."""
    c = e.candidate
    return {
        "index": c.index,
        "label": c.label,
        "after": c.after,
        "cut": list(c.cut),
        "device_s": e.device_s,
        "uplink_s": e.uplink_s,
        "server_s": e.server_s,
        "downlink_s": e.downlink_s,
        "latency_s": e.latency_s,
        "compute_j": e.compute_j,
        "radio_j": e.radio_j,
        "energy_j": e.energy_j,
        "cut_bytes": e.cut_bytes,
        "wire_bytes": e.wire_bytes,
        "air_bytes": e.air_bytes,
        "frames": e.frames,
        "flash_bytes": e.flash_bytes,
        "ram_bytes": e.ram_bytes,
        "leakage": e.leakage,
        "fits": e.fits,
        "problems": e.problems,
    }
