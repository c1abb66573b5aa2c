"""How the torch model behind a spec calls its layers: facts about torchvision's code, not results.

Counting tools see a model's *code*, not its architecture: the same average pooling counts
differently when it is an ``nn.AdaptiveAvgPool2d`` module than when it is a call to
``nn.functional.adaptive_avg_pool2d`` (module hooks do not see the call), and torchstat keeps only
the last call of a module that the forward uses several times. A spec describes the
architecture, so these facts are kept here, keyed by the torchvision file a spec names in its
``source:``. Every other layer is taken to be its own module (as in an ``nn.Sequential``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from explorer.conventions.base import View
from explorer.spec import Spec


@dataclass(frozen=True)
class Implementation:
    source: str  # a torchvision file a spec's ``source:`` names
    why: str  # where in that file
    functional: tuple[str, ...] = ()  # layer paths called through torch.nn.functional
    shared: tuple[tuple[str, ...], ...] = ()  # layer names that are one module within a block instance
    containers: tuple[tuple[str, str], ...] = ()  # (spec block, torch class): a module hooked around its layers


IMPLEMENTATIONS = (
    Implementation("torchvision/models/mobilenetv2.py",
                   "MobileNetV2._forward_impl calls nn.functional.adaptive_avg_pool2d(x, (1, 1))",
                   functional=("avgpool",), containers=(("inverted_residual", "InvertedResidual"),)),
    Implementation("torchvision/models/resnet.py",
                   "BasicBlock.forward and Bottleneck.forward call their one self.relu after every stage "
                   "and after the residual add",
                   shared=(("relu1", "relu2", "relu3"),),
                   containers=(("basic", "BasicBlock"), ("bottleneck", "Bottleneck"))),
)


def implementation(spec: Spec) -> Implementation | None:
    for impl in IMPLEMENTATIONS:
        if impl.source in (spec.source or ""):
            return impl
    return None


def mark(views: Sequence[View], spec: Spec) -> list[str]:
    """Set ``functional`` and ``reused`` on the views; return a note on what was applied."""
    impl = implementation(spec)
    if impl is None:
        return []
    used = False
    for v in views:
        if v.path in impl.functional:
            v.functional = used = True
    last: dict[tuple[str, int], View] = {}
    for v in views:
        prefix, _, name = v.path.rpartition(".")
        for k, group in enumerate(impl.shared):
            if name in group:
                if (prefix, k) in last:
                    last[(prefix, k)].reused = used = True
                last[(prefix, k)] = v
    _mark_containers(views, spec, dict(impl.containers))
    return [f"torch model: {impl.why} ({impl.source})"] if used else []


def _mark_containers(views: Sequence[View], spec: Spec, classes: dict[str, str]) -> None:
    """The last layer of each instance of a container block returns the container's output: mark it
    with the torch class (torchsummary lists the container as a row of its own right after it)."""
    for entry in spec.layers:
        cls = classes.get(str(entry.get("block")))
        if cls is None:
            continue
        last: dict[str, View] = {}
        depth = 2 if "repeat" in entry else 1  # "layer1.0.conv1" (repeated) or "stem.conv"
        for v in views:
            parts = v.path.split(".")
            if parts[0] == entry["name"] and len(parts) > depth:
                last[".".join(parts[:depth])] = v
        for v in last.values():
            v.closes = (*v.closes, cls)
