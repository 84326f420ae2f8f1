import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from growray.cost import count_params, forward_flops, training_flops_per_sample
from growray.growth import Net2WiderInitializer, RandomInitializer, widen
from growray.models import GrowableCNN, GrowableMLP

torch.set_num_threads(1)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_mlp_flops_and_params(batch_norm):
    m = GrowableMLP((2, 5), 3, hidden=[7, 4], batch_norm=batch_norm)
    dims = [10, 7, 4, 3]
    # FlopCounterMode counts 2 FLOPs per multiply-add of aten.addmm: the bias add, the
    # BatchNorm and the activations are not counted.
    assert forward_flops(m, (2, 5)) == 2 * sum(a * b for a, b in itertools.pairwise(dims)) == 220
    n = sum(a * b + b for a, b in itertools.pairwise(dims)) + (2 * (7 + 4) if batch_norm else 0)
    assert count_params(m) == n


def test_flops_restore_mode_and_skip_frozen():
    m = GrowableMLP((4,), 2, hidden=[3])
    m.train()
    forward_flops(m, [4])
    assert m.training
    m.eval()
    forward_flops(m, [4])
    assert not m.training
    m.head.weight.requires_grad_(False)
    assert count_params(m) == 4 * 3 + 3 + 2


def test_flops_bad_shape():
    with pytest.raises(ValueError, match="input_shape"):
        forward_flops(GrowableMLP((4,), 2), [])


# --- exact FLOPs, derived by hand -------------------------------------------------------
# FlopCounterMode: 2 FLOPs per multiply-add of mm/addmm/convolution; bias adds, BatchNorm,
# activations, pooling and elementwise ops count 0.


def test_linear_flops():
    assert forward_flops(nn.Linear(13, 7), (13,)) == 2 * 13 * 7
    assert forward_flops(nn.Linear(13, 7, bias=False), (13,)) == 2 * 13 * 7


@pytest.mark.parametrize("stride,padding,groups", [(1, 1, 1), (2, 0, 1), (1, 1, 3)])
def test_conv2d_flops(stride, padding, groups):
    c_in, c_out, k, h, w = 3, 6, 3, 9, 8
    conv = nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding, groups=groups)
    h_out = (h + 2 * padding - k) // stride + 1
    w_out = (w + 2 * padding - k) // stride + 1
    assert forward_flops(conv, (c_in, h, w)) == 2 * (c_in // groups) * k * k * c_out * h_out * w_out


@pytest.mark.parametrize("init", [RandomInitializer(), Net2WiderInitializer()], ids=["random", "net2wider"])
def test_grown_mlp_flops(init):
    torch.manual_seed(0)
    m = GrowableMLP((2, 3), 4, hidden=[5, 6], batch_norm=True)
    assert forward_flops(m, (2, 3)) == 2 * (6 * 5 + 5 * 6 + 6 * 4)
    widen(m, "hidden.0", init.propose(m, "hidden.0", 3))
    widen(m, "hidden.1", init.propose(m, "hidden.1", 2))
    assert m.widths() == {"hidden.0": 8, "hidden.1": 8}
    assert forward_flops(m, (2, 3)) == 2 * (6 * 8 + 8 * 8 + 8 * 4)


def test_grown_cnn_flops():
    torch.manual_seed(0)
    m = GrowableCNN((1, 8, 8), 3, channels=[2, 4], kernel_size=3, hidden=[5])

    def hand(c0, c1):  # same-padding 3x3 convs, 2x2 pool after each: 8x8 -> 4x4 -> 2x2
        return 2 * (1 * 9 * c0 * 8 * 8 + c0 * 9 * c1 * 4 * 4 + c1 * 2 * 2 * 5 + 5 * 3)

    assert forward_flops(m, (1, 8, 8)) == hand(2, 4)
    widen(m, "conv.0", RandomInitializer().propose(m, "conv.0", 3))
    widen(m, "conv.1", RandomInitializer().propose(m, "conv.1", 2))  # read by fc.0 through the flatten
    assert forward_flops(m, (1, 8, 8)) == hand(5, 6)


class _MixedOp(nn.Module):
    """A DARTS-style mixed op written functionally: softmax(alpha)-weighted sum of a 3x3
    conv, a 5x5 dilated conv, a depthwise-separable 3x3 conv, a max-pool and the identity."""

    def __init__(self, c: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(5))
        self.w3 = nn.Parameter(torch.randn(c, c, 3, 3))
        self.w5 = nn.Parameter(torch.randn(c, c, 5, 5))
        self.dw = nn.Parameter(torch.randn(c, 1, 3, 3))
        self.pw = nn.Parameter(torch.randn(c, c, 1, 1))

    def forward(self, x):
        a = F.softmax(self.alpha, dim=0)
        c = x.shape[1]
        ops = [
            F.conv2d(F.relu(x), self.w3, padding=1),
            F.conv2d(F.relu(x), self.w5, padding=4, dilation=2),
            F.conv2d(F.conv2d(F.relu(x), self.dw, padding=1, groups=c), self.pw),
            F.max_pool2d(x, 3, stride=1, padding=1),
            x,
        ]
        return sum(w * op for w, op in zip(a, ops))


def test_functional_mixed_op_flops():
    c, h, w = 4, 6, 5
    hw = h * w
    fwd = 2 * (c * 9 * c * hw + c * 25 * c * hw + 1 * 9 * c * hw + c * 1 * c * hw)
    m = _MixedOp(c)
    assert forward_flops(m, (c, h, w)) == fwd
    # Backward: a weight gradient per conv (= its forward); input gradients only where the
    # input of the conv needs one: the pointwise conv's input (the depthwise output) does.
    assert training_flops_per_sample(m, (c, h, w)) == 2 * fwd + 2 * c * c * hw


@pytest.mark.parametrize("batch_norm", [False, True])
def test_training_flops_mlp_by_hand(batch_norm):
    m = GrowableMLP((2, 5), 3, hidden=[7, 4], batch_norm=batch_norm)
    layers = [(10, 7), (7, 4), (4, 3)]
    forward = sum(2 * i * o for i, o in layers)
    weight_grads = sum(2 * i * o for i, o in layers)
    # The input needs no gradient, so torch skips the first layer's input gradient.
    input_grads = sum(2 * i * o for i, o in layers[1:])
    assert training_flops_per_sample(m, (2, 5)) == forward + weight_grads + input_grads == 520

    # A frozen layer gets no weight gradient (it still passes the input gradient on).
    m.head.weight.requires_grad_(False)
    assert training_flops_per_sample(m, (2, 5)) == 520 - 2 * 4 * 3


def test_training_flops_conv_first_layer():
    conv = nn.Conv2d(3, 5, 3, padding=1)
    fwd = 2 * 3 * 9 * 5 * 6 * 6
    assert training_flops_per_sample(conv, (3, 6, 6)) == 2 * fwd  # forward + weight gradient only


def test_training_flops_leaves_grads_stats_mode_and_rng():
    torch.manual_seed(0)
    m = GrowableMLP((6,), 3, hidden=[5], batch_norm=True)
    m.train()
    m(torch.randn(8, 6)).sum().backward()  # existing grads and BN statistics
    m.hidden[0].linear.bias.grad = None  # and one parameter without a grad
    before = {k: v.clone() for k, v in m.state_dict().items()}
    grads = {n: None if p.grad is None else p.grad.clone() for n, p in m.named_parameters()}
    rng = torch.get_rng_state()
    training_flops_per_sample(m, (6,))
    assert m.training
    assert torch.equal(torch.get_rng_state(), rng)
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k]), k
    for n, p in m.named_parameters():
        assert (p.grad is None) if grads[n] is None else torch.equal(p.grad, grads[n]), n
    with torch.no_grad():  # counts a backward pass even when called under no_grad
        assert training_flops_per_sample(m, (6,)) == 2 * (6 * 5 + 5 * 3) * 2 + 2 * 5 * 3


@pytest.mark.parametrize("groups,transposed", [(1, False), (3, False), (1, True), (3, True)])
def test_conv_backward_counts_each_gradient_as_a_forward(groups, transposed):
    # torch 2.15's own formula ignores groups for the weight gradient; growray's does not,
    # and agrees with torch's wherever groups == 1.
    from torch.utils.flop_counter import FlopCounterMode

    from growray.cost.static import flop_counter

    cls = nn.ConvTranspose2d if transposed else nn.Conv2d
    conv = cls(3, 6, 3, stride=2, padding=1, groups=groups)
    x = torch.randn(2, 3, 7, 7, requires_grad=True)
    fwd = forward_flops(conv, (3, 7, 7)) * 2
    counts = []
    for counter in (flop_counter(), FlopCounterMode(display=False)):
        with counter:
            conv(x).sum().backward()
        counts.append(counter.get_total_flops())
    assert counts[0] == 3 * fwd  # forward, input gradient, weight gradient
    if groups == 1:
        assert counts[1] == counts[0]


def test_training_flops_parameter_fed_to_a_submodule():
    # DARTS-style: the architecture weights go through a softmax module.
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.alpha = nn.Parameter(torch.zeros(2))
            self.softmax = nn.Softmax(dim=0)
            self.a, self.b = nn.Linear(4, 3), nn.Linear(4, 3)

        def forward(self, x):
            w = self.softmax(self.alpha)
            return w[0] * self.a(x) + w[1] * self.b(x)

    net = Net()
    assert net.alpha.grad is None
    assert training_flops_per_sample(net, (4,)) == 2 * (2 * 4 * 3 * 2)  # forward + weight grads
    assert net.alpha.grad is None and net.a.weight.grad is None
