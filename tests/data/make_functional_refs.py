"""Reference numbers of thop, ptflops and torchinfo on torchvision models whose code calls layers
through torch.nn.functional or as module subclasses (GoogLeNet, Inception-v3, DenseNet, ConvNeXt).

Not run by the tests (CI needs none of these tools). Run in a separate venv that sees torch:
    python -m venv --system-site-packages /tmp/venv_pt
    /tmp/venv_pt/bin/pip install --no-deps thop==0.1.1.post2209072238 ptflops==0.7.5 torchinfo==1.8.0
    /tmp/venv_pt/bin/python tests/data/make_functional_refs.py > tests/data/functional_counts.json
Each case runs in its own process: a tool that raises may leave patches or hooks behind.
"""
from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import warnings

# (model, kwargs, resolution, batch); the kwargs match tests/test_import.py
CASES = [("googlenet", {"aux_logits": False, "init_weights": False}, r, b) for r, b in ((64, 1), (96, 1), (64, 2))]
CASES += [("inception_v3", {"aux_logits": False, "init_weights": False}, r, b) for r, b in ((96, 1), (128, 1), (96, 2))]
CASES += [("densenet121", {}, r, b) for r, b in ((64, 1), (96, 1), (64, 2))]
CASES += [("convnext_tiny", {}, r, b) for r, b in ((64, 1), (96, 1), (64, 2))]


def _torchvision():
    """torchvision, importable where only a CUDA build of it sits on a CPU torch (tests/test_import.py)."""
    import torch

    try:
        import torchvision
        return torchvision
    except RuntimeError:
        pass
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        del sys.modules[name]
    lib = torch.library.Library("torchvision", "FRAGMENT")
    for op in ("nms", "qnms"):
        lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _torchvision.lib = lib
    import torchvision
    return torchvision


def one(name: str, kwargs: dict, res: int, batch: int) -> dict:
    import torch

    warnings.filterwarnings("ignore")
    torch.set_grad_enabled(False)
    tv = _torchvision()

    def fresh():  # a model of its own for each tool
        torch.manual_seed(0)
        return getattr(tv.models, name)(weights=None, **kwargs).eval()

    x = torch.randn(batch, 3, res, res)
    out = {"model": name, "kwargs": kwargs, "resolution": res, "batch": batch,
           "params": sum(p.numel() for p in fresh().parameters())}
    from thop import profile

    with contextlib.redirect_stdout(io.StringIO()):
        macs, _ = profile(fresh(), inputs=(x,), verbose=False)
    out["thop_macs"] = float(macs)
    from ptflops import get_model_complexity_info

    with contextlib.redirect_stdout(io.StringIO()):
        macs, _ = get_model_complexity_info(fresh(), (3, res, res), as_strings=False, backend="pytorch",
                                            print_per_layer_stat=False, input_constructor=lambda _: x)
    out["ptflops_pytorch_macs"] = float(macs)
    from torchinfo import summary

    out["torchinfo_mult_adds"] = int(summary(fresh(), input_data=x, verbose=0).total_mult_adds)
    return out


def main() -> None:
    if len(sys.argv) > 1:
        print(json.dumps(one(*json.loads(sys.argv[1]))))
        return
    rows = []
    for case in CASES:
        done = subprocess.run([sys.executable, __file__, json.dumps(case)], capture_output=True, text=True,
                              check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    import torch

    tv = _torchvision()
    import ptflops
    import thop
    import torchinfo

    print(json.dumps({"about": "thop, ptflops (pytorch backend) and torchinfo on torchvision models that call "
                      "layers functionally or as module subclasses (weights=None, eval, no grad); made by "
                      "tests/data/make_functional_refs.py",
                      "tools": {"torch": torch.__version__, "torchvision": tv.__version__,
                                "thop": getattr(thop, "__version__", "0.1.1.post2209072238"),
                                "ptflops": getattr(ptflops, "__version__", "0.7.5"),
                                "torchinfo": torchinfo.__version__}, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
