"""Prints the PyTorch reference values committed in tests/reference_values.rs.

Inputs are formulas (no RNG), so the Rust test builds the very same tensors:
  x[i] = sin(0.37·i + 0.1),  w[i] = 0.5·cos(0.11·i),  b[o] = 0.1·o − 0.2,  logits[i] = 3·sin(0.37·i + 0.1).
Run: python3 scripts/torch_reference_values.py   (measured with torch 2.15.0, CPU, float32)
"""
import math

import torch
import torch.nn.functional as F


def seq(shape, f):
    n = math.prod(shape)
    return torch.tensor([f(i) for i in range(n)], dtype=torch.float32).reshape(shape)


def x_of(shape):
    return seq(shape, lambda i: math.sin(0.37 * i + 0.1))


def w_of(shape):
    return seq(shape, lambda i: 0.5 * math.cos(0.11 * i))


def pick(t, idx):
    flat = t.detach().reshape(-1)
    return ", ".join(f"({i}, {flat[i].item():.7e})" for i in idx)


x = x_of([2, 3, 7, 9])
w = w_of([4, 3, 3, 3])
b = torch.tensor([0.1 * o - 0.2 for o in range(4)])
y = F.conv2d(x, w, b, stride=2, padding=1)
print("conv 3x3/2 pad 1", list(y.shape), "sum", f"{y.sum().item():.7e}")
print("  ", pick(y, [0, 7, 33, 79, 101, 159]))

x = x_of([1, 1, 27, 31])
w = w_of([2, 1, 11, 11])
y = F.conv2d(x, w, None, stride=4)
print("conv 11x11/4", list(y.shape), "sum", f"{y.sum().item():.7e}")
print("  ", pick(y, [0, 13, 29, 41, 59]))

x = x_of([2, 3, 8, 9])
w = w_of([5, 3, 5, 5])
y = F.conv2d(x, w, None, padding=2)
print("conv 5x5 pad 2", list(y.shape), "sum", f"{y.sum().item():.7e}")
print("  ", pick(y, [0, 77, 200, 555, 719]))

x = x_of([1, 2, 9, 11])
y = F.max_pool2d(x, 3, 2)
print("max-pool 3/2", list(y.shape), "sum", f"{y.sum().item():.7e}")
print("  ", pick(y, [0, 5, 17, 23, 39]))

logits = (3 * x_of([4, 5])).requires_grad_()
labels = torch.tensor([1, 4, 0, 2])
loss = F.cross_entropy(logits, labels)
loss.backward()
print("cross-entropy", f"{loss.item():.7e}")
print("  grad", pick(logits.grad, [0, 1, 9, 10, 19]))

# Every unary op of Kiln's table (crates/tensor/src/unary_ops.rs, UnaryOp::examples()
# with the same parameters), forward and gradient of y.sum(), on
# x[i] = 3·sin(0.37·i + 0.1), i < 24 (|x| + 0.5 for ops defined on positive inputs).
# Printed as the Rust table ACTIVATIONS of tests/reference_values.rs.
ACTIVATION_PICKS = [0, 3, 7, 12, 18, 23]
activations = [
    ("neg", False, torch.neg),
    ("relu", False, F.relu),
    ("sigmoid", False, torch.sigmoid),
    ("tanh", False, torch.tanh),
    ("exp", False, torch.exp),
    ("log", True, torch.log),
    ("sqrt", True, torch.sqrt),
    ("powf", True, lambda t: torch.pow(t, 2.5)),
    ("mul_scalar", False, lambda t: t * 3.0),
    ("add_scalar", False, lambda t: t + 2.0),
    ("clamp", False, lambda t: torch.clamp(t, -0.45, 0.95)),
    ("abs", False, torch.abs),
    ("gelu", False, F.gelu),
    ("gelu_tanh", False, lambda t: F.gelu(t, approximate="tanh")),
    ("silu", False, F.silu),
    ("leaky_relu", False, lambda t: F.leaky_relu(t, 0.1)),
    ("softplus", False, F.softplus),
    ("elu", False, lambda t: F.elu(t, 1.5)),
]
print("const ACTIVATIONS: &[(&str, [(usize, f32, f32); 6])] = &[")
for name, positive, f in activations:
    x = 3 * x_of([24])
    if positive:
        x = x.abs() + 0.5
    x.requires_grad_()
    y = f(x)
    y.sum().backward()
    rows = ", ".join(f"({i}, {y[i].item():.8e}, {x.grad[i].item():.8e})" for i in ACTIVATION_PICKS)
    print(f'    ("{name}", [{rows}]),')
print("];")

# Losses between a prediction and a target of one shape (mean reduction), their
# gradients for the prediction, and average pooling; printed for
# tests/reference_values.rs (losses_and_avg_pool_match_pytorch).
pred = (3 * x_of([4, 6])).requires_grad_()
target = w_of([4, 6]) * 4
probability = (w_of([4, 6]) + 0.5).clamp(0, 1)
for name, f in [
    ("mse_loss", lambda p: F.mse_loss(p, target)),
    ("l1_loss", lambda p: F.l1_loss(p, target)),
    ("huber_loss", lambda p: F.huber_loss(p, target, delta=1.0)),
    ("bce_with_logits", lambda p: F.binary_cross_entropy_with_logits(p, probability)),
]:
    pred.grad = None
    loss = f(pred)
    loss.backward()
    print(name, f"{loss.item():.8e}", "grad", pick(pred.grad, [0, 5, 11, 17, 23]))

x = x_of([2, 3, 7, 9])
y = F.avg_pool2d(x, 3, 2, 1)
print("avg-pool 3/2 pad 1", list(y.shape), "sum", f"{y.sum().item():.7e}")
print("  ", pick(y, [0, 7, 33, 79, 101]))
y = F.adaptive_avg_pool2d(x, 1)
print("global avg-pool", list(y.shape), "sum", f"{y.sum().item():.7e}")
print("  ", pick(y, [0, 2, 5]))

# Normalization layers with their default parameters (weight 1, bias 0): BatchNorm2d's
# training output and running statistics after that step, then its evaluation output;
# GroupNorm(2, 4) and LayerNorm([9]) outputs. For tests/reference_values.rs.
x = 2 * x_of([2, 4, 3, 3]) + 0.5
bn = torch.nn.BatchNorm2d(4).train()
y = bn(x)
print("batch norm train", list(y.shape), "sum", f"{y.sum().item():.7e}", pick(y, [0, 10, 37, 71]))
print("  running mean", pick(bn.running_mean, [0, 1, 2, 3]))
print("  running var", pick(bn.running_var, [0, 1, 2, 3]))
y = bn.eval()(x)
print("batch norm eval sum", f"{y.sum().item():.7e}", pick(y, [0, 10, 37, 71]))
y = torch.nn.GroupNorm(2, 4)(x)
print("group norm", pick(y, [0, 10, 37, 71]))
y = torch.nn.LayerNorm([9])(x.reshape(8, 9))
print("layer norm", pick(y, [0, 10, 37, 71]))

# The fused ops F.batch_norm (batch statistics) and F.layer_norm with a scale
# 1 + w_of and a shift 0.3·x_of, and the gradients of Σ(y · w_of) for the input, the
# weight and the bias. For tests/reference_values.rs (fused_normalizations_match_pytorch).
for name in ["batch_norm", "layer_norm"]:
    x = (2 * x_of([2, 4, 3, 3]) + 0.5).requires_grad_()
    features = [4] if name == "batch_norm" else [3, 3]
    weight = (1 + w_of(features)).requires_grad_()
    bias = (0.3 * x_of(features)).requires_grad_()
    if name == "batch_norm":
        y = torch.nn.functional.batch_norm(x, None, None, weight, bias, training=True, eps=1e-5)
    else:
        y = torch.nn.functional.layer_norm(x, features, weight, bias, eps=1e-5)
    (y * w_of([2, 4, 3, 3])).sum().backward()
    print(name, pick(y, [0, 10, 37, 71]))
    print("  dx", pick(x.grad, [0, 10, 37, 71]), "dweight", pick(weight.grad, [0, 3]), "dbias", pick(bias.grad, [0, 3]))

# F.scaled_dot_product_attention of q = x_of, k = w_of, v = 2·x_of + 0.5 ([2, 3, 5, 4],
# [2, 3, 6, 4], [2, 3, 6, 3]), default scale, and the gradients of Σ(y · w_of) for q, k
# and v. For tests/reference_values.rs (scaled_dot_product_attention_matches_pytorch).
q = x_of([2, 3, 5, 4]).requires_grad_()
k = w_of([2, 3, 6, 4]).requires_grad_()
v = (2 * x_of([2, 3, 6, 3]) + 0.5).requires_grad_()
y = F.scaled_dot_product_attention(q, k, v)
(y * w_of([2, 3, 5, 3])).sum().backward()
print("sdpa", pick(y, [0, 11, 47, 89]))
print("  dq", pick(q.grad, [0, 13, 57, 119]), "dk", pick(k.grad, [0, 17, 71, 143]), "dv", pick(v.grad, [0, 19, 61, 107]))

# MultiheadAttention(8, 2, batch_first=True) with parameters from formulas, on
# x[b, t, e] = sin(0.37·i + 0.1): self-attention with the last key of the second
# example masked as padding, without masks, and causal. For tests/reference_values.rs.
attention = torch.nn.MultiheadAttention(8, 2, batch_first=True)
with torch.no_grad():
    attention.in_proj_weight.copy_(w_of([24, 8]))
    attention.in_proj_bias.copy_(0.1 * x_of([24]))
    attention.out_proj.weight.copy_(w_of([8, 8]) * 0.8)
    attention.out_proj.bias.copy_(0.05 * x_of([8]))
x = x_of([2, 3, 8])
padding = torch.tensor([[False, False, False], [False, False, True]])
y, _ = attention(x, x, x, key_padding_mask=padding)
print("attention padded", pick(y, [0, 9, 22, 30, 47]))
y, _ = attention(x, x, x)
print("attention unmasked", pick(y, [0, 9, 22, 30, 47]))
causal = torch.triu(torch.full((3, 3), float("-inf")), diagonal=1)
y, _ = attention(x, x, x, attn_mask=causal)
print("attention causal", pick(y, [0, 9, 22, 30, 47]))

# index_select, gather, scatter_add and nll_loss with their gradients (of the sum of
# the result times w, so every position is weighted differently). For
# tests/reference_values.rs (indexing_matches_pytorch).
x = x_of([3, 4, 2]).requires_grad_()
ids = torch.tensor([3, 0, 3, 1, 2])
y = x.index_select(1, ids)
(y * w_of(list(y.shape))).sum().backward()
print("index_select", list(y.shape), pick(y, [0, 7, 13, 29]), "grad", pick(x.grad, [0, 3, 6, 7, 21]))
x.grad = None
index = torch.tensor([[[1, 0], [3, 3]], [[2, 2], [0, 1]], [[3, 1], [1, 0]]])
y = x.gather(1, index)
(y * w_of(list(y.shape))).sum().backward()
print("gather", pick(y, [0, 3, 6, 11]), "grad", pick(x.grad, [0, 2, 7, 14, 19]))
src = (2 * x_of([3, 2, 2]) + 1).detach().requires_grad_()
base = w_of([3, 4, 2])
y = base.scatter_add(1, index, src)
(y * x_of([3, 4, 2])).sum().backward()
print("scatter_add", pick(y, [0, 3, 6, 14, 23]), "grad", pick(src.grad, [0, 3, 6, 11]))
logp = F.log_softmax(3 * x_of([4, 5]), 1).detach().requires_grad_()
loss = F.nll_loss(logp, torch.tensor([1, 4, 0, 2]))
loss.backward()
print("nll_loss", f"{loss.item():.7e}", "grad", pick(logp.grad, [1, 9, 10, 17]))

# RMSprop (lr 0.01, alpha 0.99, eps 1e-8, weight decay 0.1) for three steps on
# p = sin(0.37·i + 0.1), i < 5, with loss Σ p·w + Σ p², and gradient clipping to norm
# 0.5 of that loss's gradient at p. For tests/reference_values.rs.
p = x_of([5]).requires_grad_()
rmsprop = torch.optim.RMSprop([p], lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.1)
w = w_of([5])
for _ in range(3):
    rmsprop.zero_grad()
    ((p * w).sum() + (p * p).sum()).backward()
    rmsprop.step()
print("rmsprop", pick(p, [0, 1, 2, 3, 4]))
p = x_of([5]).requires_grad_()
((p * w).sum() + (p * p).sum()).backward()
norm = torch.nn.utils.clip_grad_norm_([p], 0.5)
print("clip_grad_norm", f"{norm.item():.7e}", pick(p.grad, [0, 1, 2, 3, 4]))

# Grouped and dilated convolutions: conv2d(x, w, b, stride, padding, dilation, groups)
# on x = sin(...) [2, 4, 9, 8], w = 0.5·cos(...). For tests/reference_values.rs.
x = x_of([2, 4, 9, 8])
for name, w_shape, stride, padding, dilation, groups in [
    ("conv groups 2", [6, 2, 3, 3], 1, 1, 1, 2),
    ("conv depthwise stride 2", [4, 1, 3, 3], 2, 1, 1, 4),
    ("conv dilation 2", [3, 4, 3, 3], 1, 2, 2, 1),
]:
    b = torch.tensor([0.1 * o - 0.2 for o in range(w_shape[0])])
    y = F.conv2d(x, w_of(w_shape), b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    print(name, list(y.shape), "sum", f"{y.sum().item():.7e}", pick(y, [0, 7, 33, 79, 101]))
