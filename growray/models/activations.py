"""Activation functions by name (YAML refers to them as ``activation: gelu``)."""

from __future__ import annotations

import torch
from torch import nn

from growray.registry import Registry

__all__ = ["ACTIVATIONS", "RationalActivation", "make_activation"]

ACTIVATIONS: Registry[nn.Module] = Registry("activation")

ACTIVATIONS.register("relu", description="max(0, x)")(nn.ReLU)
ACTIVATIONS.register("leaky_relu", description="max(0, x) + 0.01 * min(0, x)")(nn.LeakyReLU)
ACTIVATIONS.register("gelu", description="x * Phi(x), exact erf form")(nn.GELU)
ACTIVATIONS.register("tanh", description="hyperbolic tangent")(nn.Tanh)
ACTIVATIONS.register("silu", description="x * sigmoid(x) (swish)")(nn.SiLU)


@ACTIVATIONS.register("rational", description="SENN's learnable rational; exactly the identity at init")
class RationalActivation(nn.Module):
    """SENN's learnable rational activation (Mitchell et al., arXiv 2307.04526):

    ``sigma(x) = [(2 v x + c) / (1 + x^2) + l x] / sqrt(max(v^2 + c^2 + l^2, eps))``

    with learnable scalars ``(v, c, l)`` shared by all units, initialised to ``(0, 0, 1)``,
    where it is exactly the identity: a layer inserted with identity weights and this
    activation preserves the function. The normalisation keeps the activation's scale
    fixed while (v, c, l) move (only their direction matters).

    ``eps`` (1e-8) is a floor under ``v^2 + c^2 + l^2``, not added to it, so the identity is
    exact at init (``sqrt(1) = 1``); it only keeps the division finite if all three
    parameters reach 0, and at init it has no effect on the gradients either.
    """

    eps: float = 1e-8

    def __init__(self) -> None:
        super().__init__()
        self.v = nn.Parameter(torch.zeros(()))
        self.c = nn.Parameter(torch.zeros(()))
        self.l = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = torch.sqrt(torch.clamp(self.v * self.v + self.c * self.c + self.l * self.l, min=self.eps))
        return ((2 * self.v * x + self.c) / (1 + x * x) + self.l * x) / norm


def make_activation(name: str) -> nn.Module:
    """A fresh activation module for ``name``.

    Raises:
        UnknownNameError: the name is not registered; the message lists the valid names
            and the closest match ("did you mean ...").
    """
    return ACTIVATIONS.build(name)
