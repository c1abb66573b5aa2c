"""`explorer import` speed: wall time of import_model (trace, map, fold, write) per torchvision model.

Run: python benchmarks/bench_import.py [model ...]   (not part of the test run; needs torch and torchvision)
"""

from __future__ import annotations

import sys
import time

from explorer.importers import import_model

MODELS = {
    "resnet18": None, "resnet50": None, "vgg11": None, "squeezenet1_1": None,
    "googlenet": '{"aux_logits": false, "init_weights": false}', "densenet121": None, "mobilenet_v2": None,
    "mobilenet_v3_small": None, "efficientnet_b0": None, "vit_b_16": None,
}


def main(names: list[str]) -> None:
    print(f"{'model':<20} {'import s':>9} {'layers':>7} {'blocks':>7} {'spec lines':>11}")
    for name in names or list(MODELS):
        start = time.perf_counter()
        result = import_model(f"torchvision.models:{name}", inputs=[("x", (1, 3, 224, 224))], kwargs=MODELS[name])
        seconds = time.perf_counter() - start
        lines = result.text.count("\n")
        print(f"{name:<20} {seconds:>9.2f} {result.layers:>7} {result.blocks:>7} {lines:>11}")


if __name__ == "__main__":
    main(sys.argv[1:])
