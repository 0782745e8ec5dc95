"""Prints the reference values of tests/reference_values.rs's label-smoothing and
Keras-loss cases: Keras 3 `sparse_categorical_crossentropy` of sigmoid outputs (loss and
gradient by tf.GradientTape) and PyTorch's `cross_entropy(label_smoothing=0.1)`.

Run with the venv of bench/requirements.txt: python scripts/loss_reference_values.py
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import keras
import numpy as np
import tensorflow as tf
import torch

print("keras", keras.__version__, "tensorflow", tf.__version__, "torch", torch.__version__)
p = np.array([[0.5, 0.5, 0.2]], np.float32)
print("keras [0.5, 0.5, 0.2], label 0:", keras.losses.sparse_categorical_crossentropy(np.array([0]), p).numpy())

z = tf.constant([[0.3, -1.2, 2.0, 0.5], [-0.7, 0.1, 0.4, -2.2], [20.0, -20.0, 0.0, 1.0]], tf.float32)
y = np.array([2, 0, 1])
with tf.GradientTape() as tape:
    tape.watch(z)
    loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, tf.sigmoid(z)))
print("keras loss of sigmoid(z): %.8f" % loss.numpy())
print("gradient:", repr(tape.gradient(loss, z).numpy().ravel()))

zt = torch.tensor(z.numpy(), requires_grad=True)
smoothed = torch.nn.functional.cross_entropy(zt, torch.tensor(y), label_smoothing=0.1)
smoothed.backward()
print("torch label_smoothing=0.1: %.8f" % smoothed.item())
print("gradient:", repr(zt.grad.numpy().ravel()))
