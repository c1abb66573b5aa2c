"""Reference numbers of flopth and torchsummary on the torchvision models behind the bundled specs.

Not run by the tests (CI needs neither tool). Run in a separate venv that sees torch:
    python -m venv --system-site-packages /tmp/venv_pt
    /tmp/venv_pt/bin/pip install --no-deps flopth==0.1.6 torchsummary==1.5.1 tabulate termcolor torchvision==0.28.0
    /tmp/venv_pt/bin/python tests/data/make_counter_refs.py > tests/data/counter_counts.json
Each case runs in its own process: flopth patches ``__call__`` of module classes and never undoes it.
"""
from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
import warnings

CASES = [("resnet18", {}, 224), ("resnet50", {}, 224), ("resnet50", {}, 160), ("vgg16", {}, 224),
         ("mobilenet_v2", {}, 224), ("mobilenet_v2", {"width_mult": 0.5}, 224), ("vit_b_16", {}, 224)]


def _torchvision():
    """torchvision's PyPI wheel is built for a CUDA torch; its custom-op fake registrations fail on the CPU
    build, which the model classes never use: skip them while importing."""
    import torch.library as lib

    register = lib.register_fake
    lib.register_fake = lambda *a, **k: (lambda f: f)
    try:
        import torchvision
    finally:
        lib.register_fake = register
    return torchvision


def _summary_lines(text: str) -> dict:
    rows = []
    for line in text.splitlines():
        m = re.match(r"\s*(\w+-\d+)\s+(\[.*\])\s+([\d,]+)$", line)
        if m:
            rows.append([m.group(1), json.loads(m.group(2)), int(m.group(3).replace(",", ""))])
    num = {k: v for k, v in re.findall(r"^(.*?): ([\d,.]+)$", text, re.M)}
    return {"rows": rows, "total_params": int(num["Total params"].replace(",", "")),
            "trainable_params": int(num["Trainable params"].replace(",", "")),
            "sizes_mb": {k: num[k] for k in ("Input size (MB)", "Forward/backward pass size (MB)",
                                             "Params size (MB)", "Estimated Total Size (MB)")}}


def one(name: str, kwargs: dict, res: int) -> dict:
    import torch

    warnings.filterwarnings("ignore")
    torch.set_grad_enabled(False)
    tv = _torchvision()

    def fresh():  # a model of its own for each tool: a tool that raises leaves its hooks behind
        return getattr(tv.models, name)(weights=None, **kwargs).eval()

    model = fresh()
    out = {"model": name, "kwargs": kwargs, "resolution": res, "batch": 1}
    try:
        from flopth import flopth

        with contextlib.redirect_stdout(io.StringIO()):
            flops, params = flopth(model, in_size=[[3, res, res]], bare_number=True)
        out["flopth_flops"], out["flopth_params"] = int(flops), int(params)
        from flopth.utils import divide_by_unit  # what flopth() returns without bare_number

        out["flopth_printed"] = divide_by_unit(flops)
    except Exception as e:  # noqa: BLE001
        out["flopth_error"] = repr(e)
    try:
        from torchsummary import summary

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            summary(fresh(), (3, res, res), device="cpu")
        out["torchsummary"] = _summary_lines(buf.getvalue())
        if name == "resnet18":  # one golden printout, byte for byte
            out["torchsummary"]["text"] = buf.getvalue()
    except Exception as e:  # noqa: BLE001 - the failure is the reference
        out["torchsummary_error"] = repr(e)
    return out


def main() -> None:
    if len(sys.argv) > 1:
        name, kwargs, res = json.loads(sys.argv[1])
        print(json.dumps(one(name, kwargs, res)))
        return
    rows = []
    for case in CASES:
        done = subprocess.run([sys.executable, __file__, json.dumps(case)], capture_output=True, text=True,
                              check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    import torch

    tv = _torchvision()
    print(json.dumps({"about": "flopth and torchsummary on torchvision models (weights=None, eval, no grad); "
                      "made by tests/data/make_counter_refs.py",
                      "tools": {"torch": torch.__version__, "torchvision": tv.__version__, "flopth": "0.1.6",
                                "torchsummary": "1.5.1"}, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
