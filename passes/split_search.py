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
- leakage: what the sent tensors (with a fixed --noise scale, as the device sends them) give away
  about the model input; 0 when nothing is sent, 1 when the input itself is sent. With at least
  compiler.privacy.MIN_ATTACK_SAMPLES real inputs for it (--privacy-data), the SSIM the learned inversion attack
  reaches on held-out ones (compiler.privacy.attack_leakage, seeded): a few seconds per cut, so only
  the candidates that meet every other constraint are attacked. Otherwise distance correlation on the
  calibration samples (compiler.privacy_metrics), which every candidate also gets as a second figure.

End-to-end latency = device + uplink + server + downlink (the device gets the answer). Device
energy = compute + radio. The search evaluates every candidate, drops those that break a
constraint (flash, RAM, at most 8 tensors on the wire, --max-bytes, --max-leakage, in that order),
and takes the minimum of the objective (ties: lower leakage, fewer bytes, earlier cut): the optimum
under the model, by construction. The Pareto front over (latency, energy, bytes, leakage) of the
candidates that fit and whose leakage was measured is reported beside it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
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
from tinysplit.passes.noise import NoiseSpec, noisy
from tinysplit.passes.quantize import activation_quant
from tinysplit.passes.split import cut_tensors, split_graph

Objective = Literal["latency", "energy"]
OBJECTIVES: tuple[Objective, ...] = ("latency", "energy")
MAX_WIRE_TENSORS = 8  # server/wire.py and server/bundle.py carry 1..8 cut tensors
SAMPLES = 128
DCOR_SAMPLES = 512  # distance correlation is O(n^2): a seeded subset of more calibration samples
ATTACK_SAMPLES = 2000  # the attack's time grows with the samples: a seeded subset of more
NOISE_SEED = 1  # the noise draw the leakage of a noisy cut is measured on
BATCH = 32
MEASURES = {"dcor": "distance correlation", "attack": "inversion attack SSIM"}


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
    leakage: float | None  # SplitSetup.measure; None: not measured (the attack skips infeasible cuts)
    dcor: float | None = None  # distance correlation, whatever the measure
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
class AttackSamples:
    """Real inputs for the inversion attack (one graph input) and every activation on them."""

    inputs: np.ndarray  # [n, *input shape[1:]], real values
    values: dict[str, np.ndarray]  # activation -> [n, *shape], as the graph computes it
    source: str


@dataclass
class SplitSetup:
    """Everything the cost model needs beside the graph."""

    target: Target
    link: Link
    server: Target
    model_id: str
    cut_quant: dict[str, Quant]  # float32 crossing tensors -> int8 quantization for sending
    leakage: dict[int, float] | None  # candidate index -> leakage in `measure` (attack: filled in by search)
    samples: str  # what the calibration samples were, for the report
    dcor: dict[int, float] = field(default_factory=dict)  # candidate index -> distance correlation
    measure: str = "dcor"  # a key of MEASURES
    attack: AttackSamples | None = None
    noise: NoiseSpec | None = None  # added to every sent tensor before leakage is measured
    leakage_note: str = ""  # which data the measure used, or why it is not the attack


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


def sent_values(
    graph: Graph,
    values: dict[str, np.ndarray],
    cut: Sequence[str],
    cut_quant: dict[str, Quant],
    noise: NoiseSpec | None,
) -> list[np.ndarray]:
    """The real values the server receives for each cut tensor: int8 as sent (float cuts quantized), noise added."""
    out, offset = [], 0
    for name in cut:
        t = graph.tensors[name]
        q = t.quant if t.dtype == "int8" else cut_quant.get(name)
        if q is None or name in graph.inputs:  # no int8 form, or the input itself: sent as it is, no noise
            out.append(real_values(graph, name, values[name]))
            continue
        sent = values[name] if t.dtype == "int8" else quant.quantize(values[name], q)
        if noise is not None:
            sent = noisy(sent, noise, NOISE_SEED, offset)
            offset += quant.NOISE_WORD_BYTES * sent.size
        out.append(quant.dequantize(sent, q).astype(np.float32))
    return out


def leakage_scores(
    graph: Graph,
    values: dict[str, np.ndarray],
    cands: list[Candidate],
    cut_quant: dict[str, Quant] | None = None,
    noise: NoiseSpec | None = None,
) -> dict[int, float]:
    """Bias-corrected distance correlation between the model input and what each candidate sends (0: nothing sent)."""

    def joined(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate([p.reshape(len(p), -1) for p in parts], axis=1)

    a = u_centered_distances(joined([real_values(graph, t, values[t]) for t in graph.inputs]))
    scores: dict[tuple[str, ...], float] = {}
    for c in cands:
        if c.cut and c.cut not in scores:
            sent = sent_values(graph, values, c.cut, cut_quant or {}, noise)
            scores[c.cut] = dcor_u_centered(a, u_centered_distances(joined(sent)))
    return {c.index: scores[c.cut] if c.cut else 0.0 for c in cands}


def attack_scores(graph: Graph, setup: SplitSetup, cands: Sequence[Candidate]) -> None:
    """The inversion attack's SSIM for each candidate not yet measured, into setup.leakage.

    Cuts that send the same values (a reshape after the cut tensor, say) are attacked once.
    """
    from tinysplit.compiler import privacy  # imports this module; JAX only when the attack runs

    assert setup.attack is not None and setup.leakage is not None
    by_values: dict[bytes, float] = {}
    for c in cands:
        if c.index in setup.leakage:
            continue
        if not c.cut:
            setup.leakage[c.index] = 0.0  # nothing leaves the device
        elif set(c.cut) & set(graph.inputs):
            setup.leakage[c.index] = 1.0  # the server receives the input itself
        else:
            sent = sent_values(graph, setup.attack.values, c.cut, setup.cut_quant, setup.noise)
            digest = hashlib.sha256(b"".join(np.ascontiguousarray(v).tobytes() for v in sent)).digest()
            if digest not in by_values:
                by_values[digest] = privacy.attack_leakage(setup.attack.inputs, sent)
            setup.leakage[c.index] = by_values[digest]


def attack_samples(graph: Graph, data: dict[str, np.ndarray], source: str) -> AttackSamples:
    """Check real inputs for the attack (one input, enough samples, images) and run the graph on them."""
    from tinysplit.compiler.privacy import MIN_ATTACK_SAMPLES, as_images  # imports this module

    if len(graph.inputs) != 1:
        raise CompileError(
            f"--privacy-data: the inversion attack needs a model with one input, not {len(graph.inputs)}"
        )
    name = graph.inputs[0]
    shape = graph.tensors[name].shape[1:]
    real = np.asarray(data[name], np.float32)
    if len(real) < MIN_ATTACK_SAMPLES:
        raise CompileError(
            f"--privacy-data {source}: the inversion attack needs {MIN_ATTACK_SAMPLES} samples or more, not {len(real)}"
        )
    if len(real) > ATTACK_SAMPLES:
        real = real[np.sort(np.random.default_rng(0).permutation(len(real))[:ATTACK_SAMPLES])]
    try:
        real = real.reshape(len(real), *shape)
        as_images(real)
    except ValueError as e:
        raise CompileError(f"--privacy-data {source}: {e}") from None
    samples = calibration_samples(graph, {name: real})
    return AttackSamples(real, activations_on(graph, samples), source)


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
    attack: AttackSamples | None = None,
    noise: NoiseSpec | None = None,
) -> SplitSetup:
    """Run the calibration samples once: quantization of float cuts and leakage of every candidate.

    With `attack` samples the leakage is the inversion attack's SSIM, measured by `search` on the
    candidates it needs; distance correlation is computed for every candidate either way.
    """
    radio_power(target, link)  # fail early when the target has no such radio
    if samples is None:
        samples = calibration_samples(graph)
        samples_note = f"{SAMPLES} seeded random inputs (seed 0): no real data given"
    values = activations_on(graph, samples)
    count = len(next(iter(samples.values())))
    cut_quant = cut_quants(graph, values)
    if count > DCOR_SAMPLES:
        pick = np.sort(np.random.default_rng(0).permutation(count)[:DCOR_SAMPLES])
        values = {k: v[pick] for k, v in values.items()}
    note = samples_note or f"{count} calibration samples"
    dcor = leakage_scores(graph, values, candidates(graph), cut_quant, noise)
    if attack is not None:
        n = len(attack.inputs)
        how = f"MLP (QUICK) and linear decoders trained on 75 % of {n} samples of {attack.source}, scored on the rest"
        measure, leakage, leakage_note = "attack", {}, how
    else:
        dcor_on = min(count, DCOR_SAMPLES)
        why = f"on {dcor_on} of the calibration samples; no --privacy-data for the inversion attack"
        measure, leakage, leakage_note = "dcor", dict(dcor), why
    return SplitSetup(
        target=target,
        link=link,
        server=server or load_target("host"),
        model_id=model_id(graph),
        cut_quant=cut_quant,
        leakage=leakage,
        samples=note,
        dcor=dcor,
        measure=measure,
        attack=attack,
        noise=noise,
        leakage_note=leakage_note,
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
        leakage=None if setup.leakage is None else setup.leakage.get(cand.index),
        dcor=setup.dcor.get(cand.index),
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

    measured = any(e.leakage is not None for e in evaluations)
    fit = [e for e in evaluations if e.fits and (e.leakage is not None or not measured)]
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
    if setup.attack is not None:  # slow: only the forced cut, or the cuts every other constraint allows
        without_leakage = replace(constraints, max_leakage=None)
        pool = [evaluations[resolve_split(graph, forced)]] if forced else feasible(evaluations, setup, without_leakage)
        attack_scores(graph, setup, [e.candidate for e in pool])
        for e in evaluations:
            e.leakage = None if setup.leakage is None else setup.leakage.get(e.candidate.index)
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
    privacy_data: dict[str, np.ndarray] | None = None,
    privacy_note: str = "--privacy-data",
    noise: NoiseSpec | None = None,
) -> SplitResult:
    """The pipeline's entry point: --split auto|none|input|TENSOR with its objective and constraints.

    `data`: real-valued calibration samples per graph input ([n, *shape] or [n, *shape[1:]]), quantized
    here for int8 inputs; without it, seeded random inputs (said so in the report). `privacy_data`
    (same form, at least compiler.privacy.MIN_ATTACK_SAMPLES): the leakage is the inversion attack's SSIM on them.
    `noise`: a fixed noise the device adds to the cut, included in the leakage.
    """
    if objective not in OBJECTIVES:
        raise CompileError(f"--objective {objective!r}: choose latency or energy")
    if max_leakage is not None and not 0.0 <= max_leakage <= 1.0:
        raise CompileError(f"--max-leakage {max_leakage}: a leakage bound (SSIM or distance correlation) in [0, 1]")
    if max_bytes is not None and max_bytes < 0:
        raise CompileError(f"--max-bytes {max_bytes}: must not be negative")
    if split != "auto":
        resolve_split(graph, split)  # an unknown tensor fails before the calibration run
    samples = None if data is None else calibration_samples(graph, data)
    attack = None if privacy_data is None else attack_samples(graph, privacy_data, privacy_note)
    setup = prepare(graph, target, link, samples, data_note, attack=attack, noise=noise)
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
        "dcor": e.dcor,
        "fits": e.fits,
        "problems": e.problems,
    }
