"""FLOPs of arbitrary code: every ATen op it runs, counted as it runs (no module tracking).

``count_flops(fn, *args)`` runs ``fn`` under a ``TorchDispatchMode`` that adds up the FLOPs
of each op that has a formula: torch's own ``flop_counter`` registry (matmuls, convolutions,
attention and their backward passes: 2 FLOPs per multiply-add; elementwise ops, reductions,
BatchNorm and activations count 0, as in ``forward_flops``), growray's convolution-backward
formula (``growray.cost.static``) and the dense linear algebra growth methods run:

- ``_linalg_svd`` (``torch.linalg.svd``, ``svdvals``; m x n, m >= n, batched), after Golub
  and Van Loan, *Matrix Computations* (4th ed., Fig. 8.6.1, Golub-Reinsch): singular values
  only ``4mn^2 - 4n^3/3``; with V and the thin U ``14mn^2 + 8n^3``; with V and the full U
  ``4m^2n + 8mn^2 + 9n^3``. What was computed is read from the outputs. Caveat: under any
  dispatch mode ``torch.linalg.svdvals`` asks for U and V as well (torch's
  ``_may_require_fw_or_bw_grad`` sees a tensor subclass), so a counted ``svdvals`` costs and
  counts a thin SVD, an upper bound of about 3.5x (m >> n) to 8x (m = n) on the values-only
  run outside the counter.
- ``linalg_pinv``: its thin SVD plus the product ``V diag(1/s) U^T`` (``2mn min(m, n)``).
- ``linalg_inv_ex`` (n x n): LU and the inverse from it, ``2n^3``.
- ``linalg_qr`` (m x n, Householder, thin Q): ``4mn^2 - 4n^3/3``; ``linalg_eigh`` (n x n):
  ``9n^3`` with vectors, ``4n^3/3`` without; ``linalg_solve_ex`` / ``linalg_lu_solve``:
  ``2n^3/3 + 2n^2 k``.

Unlike ``FlopCounterMode`` this does not track modules, so it works around
``torch.autograd.grad`` on any parameter and costs one dictionary lookup per op.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from growray.cost.static import _conv_backward_flops

__all__ = ["OpFlopCounter", "count_flops", "svd_flops"]

T = TypeVar("T")
aten = torch.ops.aten


def _batch(shape: Sequence[int]) -> int:
    return math.prod(int(d) for d in shape[:-2])


def svd_flops(m: int, n: int, *, u: str = "none", batch: int = 1) -> int:
    """FLOPs of an SVD of a ``m x n`` matrix (Golub-Reinsch; ``u``: "none" for singular
    values only, "thin" for V and the thin U, "full" for V and the full U)."""
    m, n = max(m, n), min(m, n)
    if n == 0:
        return 0
    if u == "none":
        flops = 4 * m * n * n - (4 * n**3) // 3
    elif u == "thin":
        flops = 14 * m * n * n + 8 * n**3
    elif u == "full":
        flops = 4 * m * m * n + 8 * m * n * n + 9 * n**3
    else:
        raise ValueError(f"u must be 'none', 'thin' or 'full'; got {u!r}")
    return batch * flops


def _svd(a_shape: Sequence[int], *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    m, n = int(a_shape[-2]), int(a_shape[-1])
    outs: Sequence[Sequence[int]] = out_shape if out_shape is not None else ((0,), (0,), (0,))
    u_shape, vh_shape = outs[0], outs[2]
    if math.prod(u_shape) == 0:
        kind = "none"
    elif m != n and max(m, n) in (int(u_shape[-1]), int(vh_shape[-2])):
        kind = "full"
    else:
        kind = "thin"
    return svd_flops(m, n, u=kind, batch=_batch(a_shape))


def _pinv(a_shape: Sequence[int], *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    m, n = int(a_shape[-2]), int(a_shape[-1])
    return svd_flops(m, n, u="thin", batch=_batch(a_shape)) + _batch(a_shape) * 2 * m * n * min(m, n)


def _inv(a_shape: Sequence[int], *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    return _batch(a_shape) * 2 * int(a_shape[-1]) ** 3


def _qr(a_shape: Sequence[int], *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    m, n = int(a_shape[-2]), int(a_shape[-1])
    m, n = max(m, n), min(m, n)
    return _batch(a_shape) * (4 * m * n * n - (4 * n**3) // 3)


def _eigh(a_shape: Sequence[int], *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    n = int(a_shape[-1])
    vectors = out_shape is not None and math.prod(out_shape[1]) > 0
    return _batch(a_shape) * (9 * n**3 if vectors else (4 * n**3) // 3)


def _solve(a_shape: Sequence[int], b_shape: Sequence[int], *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    n = int(a_shape[-1])
    k = 1 if len(b_shape) == 1 else int(b_shape[-1])
    return _batch(a_shape) * ((2 * n**3) // 3 + 2 * n * n * k)


@functools.cache
def _registry() -> dict[Any, Callable[..., int]]:
    """torch's formulas plus growray's (built on first use: ``torch.utils.flop_counter``
    loads triton, which a command that counts nothing need not pay)."""
    from torch.utils.flop_counter import flop_registry, shape_wrapper

    extra = {
        aten.convolution_backward: shape_wrapper(_conv_backward_flops),
        aten._linalg_svd: shape_wrapper(_svd),
        aten.linalg_pinv: shape_wrapper(_pinv),
        aten.linalg_inv_ex: shape_wrapper(_inv),
        aten.linalg_qr: shape_wrapper(_qr),
        aten._linalg_eigh: shape_wrapper(_eigh),
        aten._linalg_solve_ex: shape_wrapper(_solve),
    }
    return {**flop_registry, **extra}


class OpFlopCounter(TorchDispatchMode):
    """Adds up the FLOPs of every ATen op run while it is active (``flops``); re-entrant in
    the sense that a second counter inside it counts the same ops into its own total."""

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = _registry().get(func._overloadpacket)
        if formula is not None:
            self.flops += int(formula(*args, **kwargs, out_val=out))
        return out


def count_flops(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, int]:
    """``(fn(*args, **kwargs), FLOPs its ATen ops computed)``."""
    counter = OpFlopCounter()
    with counter:
        result = fn(*args, **kwargs)
    return result, counter.flops
