"""explorer: exact symbolic costs, roofline predictions and design-space studies for
neural-network architectures written as YAML specs.

The pipeline, one module per step::

    spec (spec.py) -> graph (graph.py, ops/) -> cost (cost.py, analysis.py)
        -> hardware (hardware/) -> study (study/) -> report (report.py, plots)

Typical use::

    import explorer
    spec = explorer.load_spec("resnet50")
    costs = explorer.symbolic_costs(spec)          # sympy closed forms
    costs.formula("macs")
    explorer.analyze(spec, {"resolution": 160}).totals   # exact integers
    f = costs.compile(); f(batch=1, resolution=np.arange(64, 513, 32), ...)  # vectorized
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from explorer.analysis import Analysis, analyze
from explorer.cost import METRICS, Compiled, Costs, Precision
from explorer.errors import ExplorerError, HardwareError, SpecError, StudyError
from explorer.graph import Model, build
from explorer.spec import Spec, load_spec, loads_spec

if TYPE_CHECKING:
    from explorer.hardware.predict import Prediction

__version__ = "0.1.0"


def predict(spec: Spec, values: dict[str, Any] | None = None, **kwargs: Any) -> Prediction:
    """Exact costs at one configuration timed on a device: ``predict(spec, {"resolution": 160},
    hardware="a100_80gb_sxm", dtype="fp16", execution="fused")`` (see explorer.hardware.predict)."""
    from explorer.hardware.predict import predict as _predict

    return _predict(spec, values, **kwargs)


def symbolic_costs(spec: Spec, precision: Precision | None = None) -> Costs:
    """Closed-form costs of a spec in all of its variables."""
    return Costs(build(spec), precision)


__all__ = ["METRICS", "Analysis", "Compiled", "Costs", "ExplorerError", "HardwareError", "Model", "Precision",
           "Spec", "SpecError", "StudyError", "analyze", "build", "load_spec", "loads_spec", "predict",
           "symbolic_costs"]
