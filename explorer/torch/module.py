"""GraphModule: one submodule per layer, run in the graph's execution order.

Each layer's output is kept only until its last consumer has run (as eager PyTorch frees
intermediates), so memory and cache behaviour match a hand-written module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from explorer.graph import Model, Ref

OnLayer = Callable[[str, Callable[[], Any]], None]


@dataclass(frozen=True)
class Step:
    """One layer of the plan: its path, its key in ``GraphModule.layers``, its inputs."""

    path: str
    key: str
    inputs: tuple[Ref, ...]
    drop: tuple[str, ...]  # nodes whose outputs are no longer needed after this step
    functional: bool = False  # ``called: functional``: run its forward directly, past module hooks


class GraphModule(nn.Module):
    """The spec's layers as submodules of ``self.layers`` (an nn.ModuleDict), run in order.

    The layers are called as the spec says its torch model calls them (docs/torch-bridge.md): a
    ``called: functional`` layer runs its ``forward`` directly, so module hooks (thop, torchinfo...)
    do not see it while patched functionals (ptflops) do; a ``module: LayerNorm2d`` layer is an
    instance of a subclass of that name; a ``shares:`` layer is the very module it names.
    """

    def __init__(self, model: Model, modules: dict[str, nn.Module]) -> None:
        super().__init__()
        self.input_names = list(model.inputs)
        self.keys = _keys(list(modules))
        self.layers = nn.ModuleDict({self.keys[p]: m for p, m in modules.items()})
        self.outputs = list(model.outputs)
        self.plan = _plan(model, self.keys)

    def layer(self, path: str) -> nn.Module:
        """The submodule of the layer at ``path`` (e.g. ``layer1.0.conv1``)."""
        return self.layers[self.keys[path]]

    def forward(self, *inputs: torch.Tensor) -> Any:
        return self.run(*inputs)

    def run(self, *inputs: torch.Tensor, on_layer: OnLayer | None = None) -> Any:
        """Run every layer in order. ``on_layer(path, fn)`` is called before each layer with a
        zero-argument ``fn`` that runs the layer on its real inputs (to time it); the run then
        calls ``fn()`` once itself for the output."""
        if len(inputs) != len(self.input_names):
            raise TypeError(f"expected {len(self.input_names)} input(s) {self.input_names}, got {len(inputs)}")
        env: dict[str, tuple[Any, ...]] = {n: (x,) for n, x in zip(self.input_names, inputs)}
        for step in self.plan:
            module = self.layers[step.key]
            args = [env[r.node][r.index] for r in step.inputs]

            def call(module: nn.Module = module, args: Sequence[Any] = args, direct: bool = step.functional) -> Any:
                return module.forward(*args) if direct else module(*args)

            if on_layer is not None:
                on_layer(step.path, call)
            out = call()
            env[step.path] = out if isinstance(out, tuple) else (out,)
            for node in step.drop:
                del env[node]
        outs = [env[r.node][r.index] for r in self.outputs]
        return outs[0] if len(outs) == 1 else tuple(outs)


def _keys(paths: list[str]) -> dict[str, str]:
    """Submodule names: the path with '.' -> '_', made unique and clear of nn.ModuleDict's attributes."""
    taken: set[str] = set()
    keys = {}
    for path in paths:
        key = path.replace(".", "_")
        while key in taken or hasattr(nn.ModuleDict, key) or not key:
            key += "_"
        taken.add(key)
        keys[path] = key
    return keys


def _plan(model: Model, keys: dict[str, str]) -> list[Step]:
    """The layers in execution order, each with the nodes that die after it."""
    last: dict[str, int] = {}
    for i, layer in enumerate(model.layers):
        for ref in layer.inputs:
            last[ref.node] = i
    keep = {r.node for r in model.outputs}
    dying: dict[int, list[str]] = {}
    for node, i in last.items():
        if node not in keep:
            dying.setdefault(i, []).append(node)
    for i, layer in enumerate(model.layers):  # outputs nobody reads die at once
        if layer.path not in last and layer.path not in keep:
            dying.setdefault(i, []).append(layer.path)
    return [Step(layer.path, keys[layer.path], tuple(layer.inputs), tuple(dying.get(i, ())), layer.torch.functional)
            for i, layer in enumerate(model.layers)]
