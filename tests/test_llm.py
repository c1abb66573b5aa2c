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
