"""GDAS' differentiable sampler (Dong & Yang, CVPR 2019), as the authors' code does it.

Per edge, Gumbel-max sampling of one op: ``y = softmax((log_softmax(alpha) + g) / tau)`` with
``g ~ Gumbel(0, 1)``, ``index = argmax y``, and the straight-through weights
``h = one_hot(index) - sg(y) + y`` (value: exactly one-hot; gradient: that of ``y``). The
forward computes only the sampled op, ``h[index] * op_index(x)``, so ``alpha`` receives the
gradient through ``y[index]`` (the paper, section 3.2: only the sampled op is computed and
back-propagated). The authors' code (``D-X-Y/AutoDL-Projects``,
``search_model_gdas.py``/``search_cells.py``) also adds the other ops' weights ``h[o]`` (value
0) to the edge's output, which sends ``sum(dL/dout)`` to them; growray follows the paper
there. ``tau`` is annealed linearly per epoch, ``tau_max - (tau_max - tau_min) * epoch /
(epochs - 1)`` (the authors' ``GDAS.py``; 10 -> 0.1). Noise is drawn on the CPU from a
generator the search owns (so a resumed search draws the same noise) and moved to the
architecture weights' device; draws with an infinite Gumbel value are redrawn, as there.
"""

from __future__ import annotations

import torch

from growray.checks import check_int, check_number

__all__ = ["gumbel_hard", "tau_at"]


def gumbel_hard(
    alpha: torch.Tensor, tau: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, list[int]]:
    """``(h, index)``: straight-through one-hot weights ``[n_edges, n_ops]`` and the sampled op of each edge."""
    tau = check_number("tau", tau, low=0.0, low_open=True)
    for _ in range(100):
        u = torch.empty(alpha.shape, dtype=torch.float64).exponential_(generator=generator)
        gumbels = (-u.log()).to(device=alpha.device, dtype=alpha.dtype)
        if torch.isfinite(gumbels).all():
            break
    else:  # pragma: no cover - probability ~0
        raise RuntimeError("could not draw finite Gumbel noise in 100 tries")
    probs = torch.softmax((torch.log_softmax(alpha, dim=-1) + gumbels) / tau, dim=-1)
    index = probs.argmax(dim=-1)
    one_hot = torch.zeros_like(probs).scatter_(-1, index.unsqueeze(-1), 1.0)
    return one_hot - probs.detach() + probs, [int(i) for i in index.tolist()]


def tau_at(epoch: int, epochs: int, tau_max: float, tau_min: float) -> float:
    """The temperature of epoch ``epoch`` (0-based) of ``epochs``: linear from tau_max to tau_min."""
    epoch = check_int("epoch", epoch, minimum=0)
    epochs = check_int("epochs", epochs, minimum=1)
    if epochs == 1:
        return float(tau_max)
    return float(tau_max - (tau_max - tau_min) * min(epoch, epochs - 1) / (epochs - 1))
