"""LLM serving: a request of a prompt plus generated tokens, and tensor parallelism (docs/hardware.md).

**Scenario.** A request of ``prompt`` tokens that generates ``generate`` tokens runs one prefill step
(``seq = context = prompt``: the prompt in, the first output token out) and ``generate - 1`` decode
steps; decode step ``j`` (1-based) feeds the token made by the step before and ends with
``context = prompt + j`` cached tokens. On a spec with the variables ``seq`` and ``context`` (every
bundled LLM spec):

    time_to_first_token   = latency(seq = P, context = P)
    time_per_output_token = mean over j = 1 .. G-1 of latency(seq = 1, context = P + j)   (exact mean)
    request latency       = time_to_first_token + (G - 1) x time_per_output_token
    tokens_per_s          = batch x G / request latency     (output tokens per second, end to end)

Peak memory is the largest over the steps (the last one holds the longest cache); MACs, FLOPs and
bytes are summed over the steps (the request's work).

**Tensor parallelism** over ``tp`` devices (Megatron-style): attention heads and KV heads, the MLP
hidden size (every expert's, in a mixture of experts) and the vocabulary (embedding and LM head) are
split: the spec variables ``heads``, ``kv_heads``, ``hidden`` and ``vocab`` are divided by ``tp``
(each must divide exactly), so costs, weights and the KV cache are per device; norms are replicated.
Each attention block, MLP block and the embedding ends with an all-reduce of its output
(``batch x seq x dim`` activations) across the devices; a ring all-reduce of ``b`` bytes takes

    2 (tp - 1) / tp x b / interconnect bandwidth + 2 (tp - 1) x interconnect latency

with the bandwidth and latency of the profile's ``interconnect`` (NVLink, PCIe). The logits stay
split across devices (sampling per shard).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from explorer.errors import ExplorerError, SpecError

SPLIT = ("heads", "kv_heads", "hidden", "vocab")  # variables divided by the tensor-parallel degree
REDUCED_OPS = ("attention", "gated_mlp", "moe", "embedding")  # outputs all-reduced under tensor parallelism


@dataclass(frozen=True)
class Scenario:
    """A request: ``prompt`` tokens in, ``generate`` tokens out (per sequence of the batch)."""

    prompt: int
    generate: int

    def __post_init__(self) -> None:
        if self.prompt < 1 or self.generate < 1:
            raise ExplorerError(f"a scenario needs prompt >= 1 and generate >= 1 tokens, got prompt {self.prompt}, "
                                f"generate {self.generate}")

    def steps(self) -> list[tuple[int, int]]:
        """(seq, context) of each step: the prefill, then the decode steps."""
        return [(self.prompt, self.prompt)] + [(1, self.prompt + j) for j in range(1, self.generate)]


def check_scenario_spec(spec: Any) -> None:
    missing = [v for v in ("seq", "context") if v not in spec.variables]
    if missing:
        raise SpecError(f"a serving scenario needs the spec variables seq and context (prefill and decode); "
                        f"{spec.name} has no {' or '.join(missing)}", path=spec.path)


def split_values(spec: Any, values: Mapping[str, Any], tp: int) -> dict[str, Any]:
    """The per-device values of the split variables (``SPLIT``) at tensor-parallel degree ``tp``."""
    if tp == 1:
        return dict(values)
    present = [v for v in SPLIT if v in spec.variables]
    missing = [v for v in ("heads", "hidden") if v not in spec.variables]
    if missing:  # splitting only some of the tensors would give per-device figures of no real layout
        raise SpecError(f"tensor parallelism splits the spec variables {', '.join(SPLIT)} (those present); "
                        f"{spec.name} has no {' or '.join(missing)} variable to split", path=spec.path)
    out = dict(values)
    for name in present:
        value = out.get(name, spec.variables[name].default)
        if not isinstance(value, (int, float)) or float(value) % tp:
            raise SpecError(f"tensor parallelism over {tp} devices splits '{name}', but {tp} does not divide "
                            f"{name} = {value}", path=spec.path)
        out[name] = int(value) // tp
    return out


def allreduce_seconds(nbytes: Any, count: Any, tp: int, device: Any) -> Any:
    """Ring all-reduce time of ``count`` all-reduces moving ``nbytes`` bytes in total (numpy-friendly)."""
    if tp == 1:
        return 0.0 * nbytes
    link = device.interconnect
    if link is None:
        raise ExplorerError(f"tensor parallelism needs the interconnect (bandwidth, latency) of '{device.id}'; "
                            "its profile has no 'interconnect'", path=device.path)
    return 2 * (tp - 1) / tp * nbytes / link.bandwidth + 2 * (tp - 1) * link.latency * count


def reduced(layer: Any) -> bool:
    """Whether tensor parallelism all-reduces this layer's output."""
    return layer.op in REDUCED_OPS


@dataclass(frozen=True)
class Serving:
    """A request's times and sizes on one device (per device under tensor parallelism)."""

    prompt: int
    generate: int
    batch: int
    tp: int
    time_to_first_token_s: float
    time_per_output_token_s: float | None  # None when only one token is generated
    latency_s: float  # the whole request
    tokens_per_s: float  # output tokens per second, end to end, over the batch
    peak_memory_bytes: int
    kv_cache_bytes: int  # after the last step
    weight_bytes: int
    decode_first_s: float | None
    decode_last_s: float | None


def serve(spec: Any, values: Mapping[str, Any] | None, *, hardware: Any, scenario: Scenario,
          dtype: str | None = None, precision: Any = None, execution: str | None = None, tp: int = 1) -> Serving:
    """Time a request (``scenario``) of a spec with ``seq`` and ``context`` on a device: every step
    evaluated exactly (the study evaluator, vectorized over the steps, equals ``explorer.predict``)."""
    import numpy as np

    from explorer.cost import Precision
    from explorer.hardware import Device, load_device
    from explorer.study.evaluate import Evaluator, Target

    check_scenario_spec(spec)
    device = hardware if isinstance(hardware, Device) else load_device(hardware)
    p = precision or Precision(dtype or spec.dtype)
    fixed = {k: v for k, v in (values or {}).items() if k not in ("seq", "context")}
    target = Target(device, p.activations, p.weights, execution, p.kv, tp=tp, scenario=scenario)
    ev = Evaluator(spec, target, fixed=fixed, searched=[])
    metrics, valid, steps = ev.evaluate_steps({})
    if not bool(np.all(valid)):
        raise SpecError("some step of the scenario has no valid tensor shapes at these values", path=spec.path)
    lat = steps["latency"][0]
    one = {m: float(np.ravel(v)[0]) for m, v in metrics.items()}
    batch = int(ev.bound.get("batch", 1))
    decode = lat[1:]
    return Serving(scenario.prompt, scenario.generate, batch, tp, float(lat[0]),
                   float(decode.mean()) if len(decode) else None, one["latency"], one["tokens_per_s"],
                   int(one["peak_memory"]), int(one["kv_cache_bytes"]), int(one["weight_bytes"]),
                   float(decode[0]) if len(decode) else None, float(decode[-1]) if len(decode) else None)
