"""Reference numbers of TensorFlow's profiler and Keras' parameter counts on tf.keras.applications models.

Not run by the tests (CI does not need TensorFlow). Run in a separate venv:
    python -m venv /tmp/venv_tf && /tmp/venv_tf/bin/pip install tensorflow-cpu==2.21.0
    /tmp/venv_tf/bin/python tests/data/make_tf_refs.py > tests/data/keras_counts.json
The model is called with training=False inside a tf.function, the concrete function for a fixed batch is
frozen (variables -> constants) and profiled with ProfileOptionBuilder.float_operation(); by_type sums
each node's registered "flops" statistic per op type (their sum is total_float_ops).
"""
from __future__ import annotations

import collections
import json

import keras
import tensorflow as tf
from tensorflow.python.framework import ops as tf_ops
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

CASES = [("MobileNetV2", {}, 224, 1), ("MobileNetV2", {}, 224, 2), ("MobileNetV2", {"alpha": 0.5}, 160, 1),
         ("MobileNetV2", {"alpha": 1.4}, 224, 1), ("ResNet50", {}, 224, 1), ("ResNet50", {}, 160, 2)]


def by_type(graph: tf.Graph) -> dict[str, int]:
    out: collections.Counter = collections.Counter()
    for op in graph.get_operations():
        try:
            value = tf_ops.get_stats_for_node_def(graph, op.node_def, "flops").value
        except ValueError:  # no registration for this op type: the profiler counts 0
            value = None
        if value:
            out[op.type] += int(value)
    return dict(out)


def one(name: str, kwargs: dict, res: int, batch: int) -> dict:
    model = getattr(tf.keras.applications, name)(weights=None, input_shape=(res, res, 3), classes=1000, **kwargs)
    fn = tf.function(lambda x: model(x, training=False))
    graph = convert_variables_to_constants_v2(
        fn.get_concrete_function(tf.TensorSpec([batch, res, res, 3], tf.float32))).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    profile = tf.compat.v1.profiler.profile(graph=graph, options=options)
    return {"model": name, "kwargs": kwargs, "resolution": res, "batch": batch,
            "total_float_ops": int(profile.total_float_ops), "by_type": by_type(graph),
            "trainable_params": int(sum(int(tf.size(w)) for w in model.trainable_weights)),
            "total_params": int(model.count_params())}


if __name__ == "__main__":
    rows = [one(*case) for case in CASES]
    print(json.dumps({"about": "TensorFlow profiler total_float_ops of frozen tf.keras.applications graphs "
                      "(weights=None, training=False); made by tests/data/make_tf_refs.py",
                      "tools": {"tensorflow": tf.__version__, "keras": keras.__version__}, "rows": rows}, indent=1))
