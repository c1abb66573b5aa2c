"""LLM specs and precisions: exact parameter counts, MACs for prefill and decode against hand
formulas, the KV cache (metric, traffic, peak memory, dtype), int4/fp8 weights, and small
Llama-style models against torch twins built from explorer.torch.llm (FlopCounterMode / 2 == MACs)."""

from __future__ import annotations

import json
import math

import pytest

from explorer.analysis import analyze
from explorer.cost import Precision
from explorer.errors import ExplorerError
from explorer.hardware import Roofline, load_device
from explorer.spec import load_spec

PARAMS = {"llama2_7b": 6_738_415_616, "llama3_8b": 8_030_261_248, "mistral_7b": 7_241_732_096,
          "mixtral_8x7b": 46_702_792_704}
LLAMA3 = dict(L=32, D=4096, h=32, kvh=8, hd=128, H=14336, V=128256)


@pytest.mark.parametrize("name", PARAMS)
def test_parameter_counts_exact(name: str) -> None:
    assert analyze(load_spec(name)).totals["params"] == PARAMS[name]


def llama_macs(L: int, D: int, h: int, kvh: int, hd: int, H: int, V: int, B: int, S: int, T: int) -> int:
    """Per layer: q and o (D x h.hd), k and v (D x kvh.hd), Q K^T and P V over T keys, SwiGLU (3 D H);
    then the LM head. S new tokens per sequence, T keys each (window-free)."""
    per_layer = 2 * B * S * D * h * hd + 2 * B * S * D * kvh * hd + 2 * B * h * S * T * hd + 3 * B * S * D * H
    return L * per_layer + B * S * D * V


@pytest.mark.parametrize("batch,seq,context", [(1, 2048, 2048), (4, 512, 512), (1, 1, 2048), (8, 1, 4096)])
def test_llama3_macs_prefill_and_decode(batch: int, seq: int, context: int) -> None:
    got = analyze(load_spec("llama3_8b"), {"batch": batch, "seq": seq, "context": context}).totals["macs"]
    assert got == llama_macs(**LLAMA3, B=batch, S=seq, T=context)


def test_mixtral_macs_count_active_experts() -> None:
    """Decode of 3 sequences: router D x E per token, 2 experts of 3 D H per token."""
    b, t = 3, 1024
    got = analyze(load_spec("mixtral_8x7b"), {"batch": b, "seq": 1, "context": t}).totals["macs"]
    attn = 2 * b * 4096 * 4096 + 2 * b * 4096 * 1024 + 2 * b * 32 * t * 128
    moe = b * 4096 * 8 + b * 2 * 3 * 4096 * 14336
    assert got == 32 * (attn + moe) + b * 4096 * 32000


def test_mistral_window_caps_keys_and_cache() -> None:
    """Context 8192 with a 4096 window: attention and the rolling cache see 4096 tokens."""
    spec = load_spec("mistral_7b")
    wide = analyze(spec, {"seq": 1, "context": 8192}).totals
    capped = analyze(spec, {"seq": 1, "context": 4096}).totals
    assert wide["macs"] == capped["macs"]
    assert wide["kv_cache_bytes"] == capped["kv_cache_bytes"] == 2 * 32 * 8 * 128 * 4096 * 2


def test_kv_cache_bytes_llama3_acceptance() -> None:
    """context = KV-cache length after the step: 2047 cached tokens + the 1 decoded (bf16)."""
    totals = analyze(load_spec("llama3_8b"), {"batch": 1, "seq": 1, "context": 2048}).totals
    assert totals["kv_cache_bytes"] == 2 * 32 * 8 * 128 * 2048 * 1 * 2 == 268_435_456


@pytest.mark.parametrize("kv,bits", [("fp16", 16), ("fp8_e4m3", 8), ("int8", 8), ("int4", 4)])
def test_kv_cache_dtype(kv: str, bits: int) -> None:
    spec = load_spec("llama3_8b")
    totals = analyze(spec, {"batch": 3, "seq": 1, "context": 1000}, Precision("bf16", kv=kv)).totals
    assert totals["kv_cache_bytes"] == 32 * math.ceil(2 * 8 * 128 * 1000 * 3 * bits / 8)


def test_decode_reads_the_cache_and_writes_the_new_token() -> None:
    """One attention layer in decode: reads x, weights and the cache; writes y and the new K/V."""
    spec = load_spec("llama2_7b")
    a = analyze(spec, {"depth": 1, "seq": 1, "context": 100})
    row = next(r for r in a.layers if r.op == "attention")
    d, kv_new, kv_old = 4096, 2 * 4096, 2 * 4096 * 99
    assert row.metrics["bytes_read"] == 2 * (d + 4 * d * d + kv_old)
    assert row.metrics["bytes_written"] == 2 * (d + kv_new)
    assert row.metrics["kv_cache_bytes"] == 2 * 2 * 4096 * 100


def test_llama2_fp16_weight_bytes_and_decode_bound() -> None:
    spec = load_spec("llama2_7b")
    a = analyze(spec, {"batch": 1, "seq": 1, "context": 1024}, Precision("fp16"))
    roof = Roofline(a.costs, load_device("a100_80gb_sxm"), "fp16")
    assert int(roof.memory.weight_bytes) == 13_476_831_232
    assert int(roof.memory.kv_cache_bytes) == 2 * 32 * 32 * 128 * 1024 * 2
    # the KV cache is resident: peak = weights + cache + the largest live activation set
    assert int(roof.memory.peak()) == 13_476_831_232 + 536_870_912 + max(int(x) for x in roof.memory.live)


def int4_bytes(n: int, group: int = 128) -> int:
    return math.ceil(n / 2) + 2 * math.ceil(n / group)


def test_int4_weights_with_group_scales() -> None:
    """W4A16: per layer ceil(n / 2) + one fp16 scale per 128 weights."""
    spec = load_spec("llama2_7b")
    a = analyze(spec, precision=Precision("fp16", "int4"))
    roof = Roofline(a.costs, load_device("a100_80gb_sxm"), "fp16")
    d, hidden, vocab = 4096, 11008, 32000
    per_layer = 2 * int4_bytes(d) + int4_bytes(4 * d * d) + int4_bytes(3 * d * hidden)
    expected = 32 * per_layer + 2 * int4_bytes(vocab * d) + int4_bytes(d)
    assert int(roof.memory.weight_bytes) == expected == 3_474_495_552
    w8 = Roofline(analyze(spec, precision=Precision.scheme("w8a16")).costs, load_device("a100_80gb_sxm"), "fp16")
    assert int(w8.memory.weight_bytes) == 6_738_415_616 + 2 * (32 * (2 * 32 + 4 * 131072 + 3 * 352256)
                                                                + 2 * 1024000 + 32)


def test_precision_errors() -> None:
    with pytest.raises(ExplorerError, match="unknown weight dtype 'int3'"):
        Precision("fp16", "int3")
    with pytest.raises(ExplorerError, match="unknown activation dtype 'int4'"):
        Precision("int4")
    with pytest.raises(ExplorerError, match="unknown quantization scheme"):
        Precision.scheme("w3a16")


def test_fp8_peaks() -> None:
    h100 = load_device("h100_sxm")
    assert h100.peak_for("fp8_e4m3") == h100.peak_for("fp8_e5m2") == h100.peak["fp8"] == pytest.approx(1979e12)
    assert load_device("l4").peak["fp8"] == pytest.approx(242.5e12)
    assert load_device("rtx_4090").peak["fp8"] == pytest.approx(330.3e12)
    with pytest.raises(ExplorerError, match="no fp8_e4m3 peak"):
        load_device("a100_80gb_sxm").peak_for("fp8_e4m3")


def test_cli_totals_carry_kv_cache(run) -> None:
    code, out, _ = run("analyze", "llama3_8b", "--set", "context=2048", "--hardware", "h100_sxm", "--quant", "w4a16",
                       "--kv-dtype", "fp8_e4m3", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["totals"]["kv_cache_bytes"] == 268_435_456 // 2
    assert data["hardware"]["weight_dtype"] == "int4" and data["hardware"]["kv_dtype"] == "fp8_e4m3"
    code, out, _ = run("analyze", "llama3_8b", "--set", "context=2048", "--format", "json")
    assert json.loads(out)["totals"]["kv_cache_bytes"] == 268_435_456


def test_cli_precision_errors(run) -> None:
    code, _, err = run("analyze", "llama2_7b", "--weight-dtype", "int3")
    assert code == 2 and "unknown weight dtype 'int3'" in err
    code, _, err = run("analyze", "llama2_7b", "--quant", "w4a16", "--dtype", "fp16")
    assert code == 2 and "--quant" in err
    code, _, err = run("analyze", "llama2_7b", "--set", "seq=8", "--set", "context=4")
    assert code == 2 and "attribute 'cached': must be a non-negative integer, got -4" in err


def test_cached_needs_kv_cache() -> None:
    from explorer.errors import SpecError
    from explorer.spec import loads_spec

    text = """name: t
inputs: {x: [1, 4, 8]}
layers:
  - {name: a, op: attention, heads: 2, cached: 3}
"""
    with pytest.raises(SpecError, match="cached=3 needs kv_cache: true"):
        analyze(loads_spec(text))


# -- torch twins --------------------------------------------------------------------------------

SMALL = {"vocab": 1000, "dim": 256, "heads": 4, "kv_heads": 2, "head_dim": 64, "hidden": 512, "depth": 2}


def twin(name: str, values: dict):
    """A Llama-style nn.Module assembled by hand from explorer.torch.llm's modules, and its input."""
    torch = pytest.importorskip("torch")
    from torch import nn

    from explorer.torch.llm import MoE, Attention, GatedMLP, RMSNorm

    v = values
    cached = v["context"] - v["seq"]

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.input_layernorm = RMSNorm(v["dim"])
            self.self_attn = Attention(v["dim"], v["heads"], v["head_dim"], kv_heads=v["kv_heads"], bias=False,
                                       causal=True, rope=True, window=v.get("window"), cached=cached,
                                       batch=v["batch"])
            self.post_attention_layernorm = RMSNorm(v["dim"])
            self.mlp = (MoE(v["dim"], v["experts"], v["top_k"], v["hidden"]) if "experts" in v
                        else GatedMLP(v["dim"], v["hidden"]))

        def forward(self, x):
            x = x + self.self_attn(self.input_layernorm(x))
            return x + self.mlp(self.post_attention_layernorm(x))

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed_tokens = nn.Embedding(v["vocab"], v["dim"])
            self.layers = nn.ModuleList(Block() for _ in range(v["depth"]))
            self.norm = RMSNorm(v["dim"])
            self.lm_head = nn.Linear(v["dim"], v["vocab"], bias=False)

        def forward(self, tokens):
            x = self.embed_tokens(tokens)
            for layer in self.layers:
                x = layer(x)
            return self.lm_head(self.norm(x))

    torch.manual_seed(0)
    return Model(), torch.randint(0, v["vocab"], (v["batch"], v["seq"]))


TWINS = [
    ("llama3_8b", {"batch": 2, "seq": 6, "context": 6}),  # prefill
    ("llama3_8b", {"batch": 2, "seq": 1, "context": 9}),  # decode
    ("llama2_7b", {"batch": 1, "seq": 3, "context": 8, "kv_heads": 4}),  # chunked prefill, MHA
    ("mistral_7b", {"batch": 2, "seq": 5, "context": 9, "window": 4}),  # windowed prefill over a cache
    ("mistral_7b", {"batch": 1, "seq": 1, "context": 9, "window": 4}),  # windowed decode
    ("mixtral_8x7b", {"batch": 2, "seq": 5, "context": 7, "experts": 4, "top_k": 2}),
]


@pytest.mark.parametrize("name,values", TWINS, ids=[f"{n}-{v['seq']}-{v['context']}" for n, v in TWINS])
def test_torch_twin_params_and_macs(name: str, values: dict) -> None:
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    values = {**SMALL, **values}
    result = analyze(load_spec(name), values)
    model, tokens = twin(name, result.values)
    assert sum(p.numel() for p in model.parameters()) == result.totals["params"]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = model(tokens)
    assert list(out.shape) == result.layers[-1].output_shape
    assert counter.get_total_flops() == 2 * result.totals["macs"]


def test_windowed_attention_matches_a_masked_reference() -> None:
    """The banded (unfolded) sliding-window path equals dense attention with a band mask."""
    torch = pytest.importorskip("torch")
    from explorer.torch.llm import Attention

    torch.manual_seed(0)
    a = Attention(16, 2, 8, kv_heads=1, bias=False, causal=True, window=3, cached=2, batch=1)
    x = torch.randn(1, 5, 16)
    got = a(x)
    a.window = None  # dense over all 7 keys, with the band as a mask
    q = a._split(a.q_proj(x), 2)
    k = torch.cat([a.past_k, a._split(a.k_proj(x), 1)], dim=-2).repeat_interleave(2, dim=1)
    v = torch.cat([a.past_v, a._split(a.v_proj(x), 1)], dim=-2).repeat_interleave(2, dim=1)
    scores = q @ k.transpose(-2, -1) / 8 ** 0.5
    pos_q, pos_k = torch.arange(2, 7)[:, None], torch.arange(7)[None, :]
    scores = scores.masked_fill((pos_k > pos_q) | (pos_k <= pos_q - 3), float("-inf"))
    ref = a.o_proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(1, 5, 16))
    assert torch.allclose(got, ref, atol=1e-5)


def test_study_evaluator_counts_the_kv_cache() -> None:
    """The compiled study metrics match the exact roofline, KV cache in peak memory included."""
    from explorer.study.evaluate import Evaluator, Target

    spec, device = load_spec("mistral_7b"), load_device("h100_sxm")
    values = {**{k: v.default for k, v in spec.variables.items()}, "batch": 4, "seq": 1, "context": 8192}
    metrics, _ = Evaluator(spec, Target(device, "bf16")).scalar(values)
    roof = Roofline(analyze(spec, values, Precision("bf16")).costs, device, "bf16")
    assert metrics["kv_cache_bytes"] == 2 * 32 * 8 * 128 * 4096 * 4 * 2
    assert metrics["peak_memory"] == pytest.approx(float(roof.totals["peak_memory_bytes"]), rel=1e-12)
    assert metrics["latency"] == pytest.approx(float(roof.totals["latency_s"]), rel=1e-12)


# --- serving: a request (prompt + generated tokens), tensor parallelism, per-mode launch overhead ---

def test_llama2_decode_time_per_token_is_the_documented_formula() -> None:
    """Llama-2-7B, one decode step at batch 1, A100 80GB, fp16 (docs/hardware.md): every kernel is
    memory-bound, so time = bytes moved / (bandwidth x efficiency) + launches x launch overhead; the
    simple bound weights / bandwidth is below it."""
    from explorer.hardware.predict import predict

    device = load_device("a100_80gb_sxm")
    p = predict(load_spec("llama2_7b"), {"batch": 1, "seq": 1, "context": 1024}, hardware=device, dtype="fp16")
    assert p.totals.weight_bytes == 13_476_831_232
    assert {k.bound for k in p.kernels if k.time_s > 0} == {"memory"}
    moved = p.analysis.totals["bytes_read"] + p.analysis.totals["bytes_written"]
    launches = sum(k.count for k in p.kernels if k.time_s > 0)
    formula = moved / (device.bandwidth * device.bandwidth_efficiency) + launches * device.launch_overhead
    assert p.totals.latency_s == pytest.approx(formula, rel=1e-12)
    assert p.totals.latency_s > p.totals.weight_bytes / device.bandwidth
    fused = predict(load_spec("llama2_7b"), {"batch": 1, "seq": 1, "context": 1024}, hardware=device,
                    dtype="fp16", execution="fused")
    assert device.launch_overhead_for("fused") < device.launch_overhead  # graph / engine launches
    assert fused.totals.latency_s < p.totals.latency_s


def test_request_metrics_are_the_steps_predictions() -> None:
    from explorer.hardware.predict import predict
    from explorer.hardware.serving import Scenario, serve

    spec = load_spec("llama3_8b")
    values = {"batch": 4, "depth": 2}
    s = serve(spec, values, hardware="h100_sxm", dtype="bf16", scenario=Scenario(prompt=100, generate=5))

    def step(seq: int, context: int) -> float:
        return predict(spec, {**values, "seq": seq, "context": context}, hardware="h100_sxm", dtype="bf16").totals.latency_s

    assert s.time_to_first_token_s == pytest.approx(step(100, 100), rel=1e-9)
    decode = [step(1, 100 + j) for j in range(1, 5)]
    assert s.time_per_output_token_s == pytest.approx(sum(decode) / 4, rel=1e-9)
    assert s.latency_s == pytest.approx(step(100, 100) + sum(decode), rel=1e-9)
    assert s.tokens_per_s == pytest.approx(4 * 5 / s.latency_s, rel=1e-12)
    L, kvh, hd = 2, LLAMA3["kvh"], LLAMA3["hd"]
    assert s.kv_cache_bytes == 2 * L * kvh * hd * (100 + 4) * 4 * 2  # the cache after the last step
    one = serve(spec, values, hardware="h100_sxm", dtype="bf16", scenario=Scenario(prompt=100, generate=1))
    assert one.time_per_output_token_s is None and one.latency_s == pytest.approx(step(100, 100), rel=1e-9)


def test_tensor_parallelism_splits_and_all_reduces() -> None:
    from explorer.hardware.predict import predict

    spec = load_spec("llama3_8b")
    values = {"batch": 2, "seq": 1, "context": 512, "depth": 4}
    device = load_device("h100_sxm")
    p2 = predict(spec, values, hardware=device, dtype="bf16", tp=2)
    split = predict(spec, {**values, "heads": 16, "kv_heads": 4, "hidden": 7168, "vocab": 64128},
                    hardware=device, dtype="bf16")
    points = 2 * 4 + 1  # attention and MLP of each layer, and the embedding
    nbytes = points * 2 * 1 * 4096 * 2  # batch x seq x dim, bf16
    link = device.interconnect
    assert link is not None
    allreduce = 2 * (2 - 1) / 2 * nbytes / link.bandwidth + 2 * (2 - 1) * link.latency * points
    assert p2.totals.allreduce_s == pytest.approx(allreduce, rel=1e-12)
    assert p2.totals.latency_s == pytest.approx(split.totals.latency_s + allreduce, rel=1e-12)
    assert p2.totals.weight_bytes == split.totals.weight_bytes  # per device
    assert p2.totals.kv_cache_bytes == split.totals.kv_cache_bytes
    with pytest.raises(ExplorerError, match="3 does not divide heads = 32"):
        predict(spec, values, hardware=device, dtype="bf16", tp=3)
    with pytest.raises(ExplorerError, match="interconnect"):
        predict(spec, values, hardware="epyc_9654", dtype="fp32", tp=2)


def test_study_with_a_scenario_and_tp(tmp_path, run) -> None:
    from explorer.hardware.serving import Scenario, serve
    from explorer.study.config import load_study
    from explorer.study.evaluate import Evaluator

    text = """name: serve
spec: llama3_8b
hardware: h100_sxm
dtype: bf16
tp: [1, 2]
scenario: {prompt: 64, generate: 3}
search:
  batch: {type: categorical, choices: [1, 4]}
fixed: {depth: 2}
objectives:
  - {metric: tokens_per_s, direction: maximize}
  - {metric: time_per_output_token, direction: minimize}
constraints:
  - time_to_first_token <= 1 s
sampler: exhaustive
output: OUT
""".replace("OUT", str(tmp_path / "out"))
    path = tmp_path / "serve.yaml"
    path.write_text(text)
    study = load_study(path)
    assert [t.tp for t in study.targets] == [1, 2]
    for target in study.targets:
        ev = Evaluator(study.spec, target, fixed=study.fixed, searched=list(study.search))
        got, valid = ev.vector({"batch": [1.0, 4.0]})
        assert valid.all()
        want = serve(study.spec, {"batch": 4, "depth": 2}, hardware="h100_sxm", dtype="bf16", tp=target.tp,
                     scenario=Scenario(64, 3))
        assert got["tokens_per_s"][1] == pytest.approx(want.tokens_per_s, rel=1e-9)
        assert got["time_to_first_token"][1] == pytest.approx(want.time_to_first_token_s, rel=1e-9)
        assert got["time_per_output_token"][1] == pytest.approx(want.time_per_output_token_s, rel=1e-9)
    assert run("sweep", path, "-o", tmp_path / "f.csv")[0] == 0
    assert run("study", "run", path, "--quiet")[0] == 0
    path.write_text(text.replace("scenario: {prompt: 64, generate: 3}\n", ""))
    code, _, err = run("study", "run", path)
    assert code == 2 and "scenario" in err and "serve.yaml:" in err


def test_cli_request(run) -> None:
    code, out, _ = run("analyze", "llama3_8b", "--hardware", "h100_sxm", "--prompt", "128", "--generate", "4",
                       "--set", "depth=2", "--format", "json")
    assert code == 0
    s = json.loads(out)["serving"]
    assert s["prompt"] == 128 and s["generate"] == 4 and s["tokens_per_s"] > 0
    code, _, err = run("analyze", "llama3_8b", "--hardware", "h100_sxm", "--prompt", "128")
    assert code == 2 and "--generate" in err
    code, _, err = run("analyze", "resnet50", "--hardware", "h100_sxm", "--prompt", "5", "--generate", "2")
    assert code == 2 and "seq and context" in err


def test_bundled_decode_study(tmp_path, run) -> None:
    """studies/llama_decode_h100.yaml: the exact sweep of a Llama-style family's decode step on an
    H100; tokens/s is batch / latency at seq = 1; the front is feasible within 80 GB."""
    import csv
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "studies" / "llama_decode_h100.yaml"
    out = tmp_path / "front.csv"
    code, _, err = run("sweep", path, "-o", out, "--plot", tmp_path / "front.png")
    assert code == 0, err
    assert "768 valid (768 distinct architectures)" in err
    rows = list(csv.DictReader(out.open()))
    assert len(rows) >= 5
    for r in rows:
        assert float(r["peak_memory"]) <= 80e9
        assert float(r["tokens_per_s"]) == pytest.approx(float(r["batch"]) / float(r["latency"]), rel=1e-12)
    params = [int(r["params"]) for r in rows]
    speed = [float(r["tokens_per_s"]) for r in rows]
    order = sorted(range(len(rows)), key=lambda i: params[i])
    assert all(speed[a] >= speed[b] for a, b in zip(order, order[1:]))  # a front: bigger models, fewer tokens/s
