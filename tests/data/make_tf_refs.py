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


def _cnn() -> keras.Model:
    """Twin of the `tfcnn` spec in tests/test_counters.py (NHWC here, NCHW there)."""
    from keras import layers

    x = keras.Input((16, 16, 4))
    y = layers.Conv2D(8, 3, padding="same")(x)
    y = layers.BatchNormalization()(y)
    y = layers.Activation("sigmoid")(y)
    y = layers.AveragePooling2D(2)(y)
    y = layers.Activation("tanh")(y)
    y = layers.LeakyReLU()(y)
    y = layers.UpSampling2D(2)(y)
    y = layers.MaxPooling2D(3, strides=2, padding="same")(y)
    y = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(y)
    y = layers.Activation("hard_swish")(y)
    y = layers.GroupNormalization(groups=2)(y)
    y = layers.Conv2DTranspose(6, 2, strides=2)(y)
    y = layers.Activation("silu")(y)
    y = layers.ReLU(6.0)(y)
    y = layers.Activation("hard_sigmoid")(y)
    y = layers.Multiply()([y, y])
    y = layers.UpSampling2D(2, interpolation="bilinear")(y)
    y = layers.GlobalMaxPooling2D(keepdims=True)(y)
    y = layers.GlobalAveragePooling2D()(y)
    y = layers.Dense(10)(y)
    return keras.Model(x, layers.Softmax()(y))


def _tx() -> keras.Model:
    """Twin of the `tftx` spec in tests/test_counters.py."""
    from keras import layers, ops

    x = keras.Input((5, 32))
    y = layers.Dense(32)(x)
    y = layers.LayerNormalization()(y)
    y = layers.MultiHeadAttention(num_heads=4, key_dim=8)(y, y)
    y = layers.Activation("gelu")(y)
    y = layers.Activation(lambda t: keras.activations.gelu(t, approximate=True))(y)
    y = layers.Dense(16, use_bias=False)(y)
    y = ops.matmul(y, ops.transpose(y, (0, 2, 1)))
    return keras.Model(x, y)


TWINS = {"tfcnn": (_cnn, [2, 16, 16, 4]), "tftx": (_tx, [2, 5, 32])}


def twin(name: str) -> dict:
    build, shape = TWINS[name]
    model = build()
    fn = tf.function(lambda x: model(x, training=False))
    graph = convert_variables_to_constants_v2(fn.get_concrete_function(tf.TensorSpec(shape, tf.float32))).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    profile = tf.compat.v1.profiler.profile(graph=graph, options=options)
    return {"twin": name, "batch": shape[0], "total_float_ops": int(profile.total_float_ops),
            "by_type": by_type(graph), "trainable_params": int(sum(int(tf.size(w)) for w in model.trainable_weights)),
            "total_params": int(model.count_params())}


if __name__ == "__main__":
    rows = [one(*case) for case in CASES]
    twins = [twin(name) for name in TWINS]
    print(json.dumps({"about": "TensorFlow profiler total_float_ops of frozen tf.keras.applications graphs "
                      "(weights=None, training=False) and of two small Keras twins of test specs; made by "
                      "tests/data/make_tf_refs.py",
                      "tools": {"tensorflow": tf.__version__, "keras": keras.__version__}, "rows": rows,
                      "twins": twins}, indent=1))
