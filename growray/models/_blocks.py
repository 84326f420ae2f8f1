"""Blocks and per-block spec options shared by the growable MLP and CNN."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

import torch
from torch import nn

from growray.models.activations import make_activation
from growray.models.dropin import DropInGate

__all__: list[str] = []  # private to growray.models

B = TypeVar("B", bound=nn.Module)


class _Stacked(Protocol):
    """What the per-block spec keys are made of."""

    @property
    def site_id(self) -> int: ...

    @property
    def activation(self) -> str: ...

    @property
    def gate(self) -> DropInGate | None: ...


def typed_blocks(blocks: nn.ModuleList, cls: type[B]) -> list[B]:
    """The modules of ``blocks``, each checked to be a ``cls``."""
    out: list[B] = []
    for b in blocks:
        if not isinstance(b, cls):
            raise TypeError(f"expected {cls.__name__} blocks; got a {type(b).__name__}")
        out.append(b)
    return out


class HiddenBlock(nn.Module):
    """Linear -> (BatchNorm1d) -> activation (-> DropIn gate); one width site.

    ``activation`` (the registered name) and ``site_id`` (the ``hidden.<id>`` site name) are
    kept on the block so that insertions carry them along.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        activation: str,
        batch_norm: bool,
        dropin: bool = False,
        site_id: int = 0,
    ):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.norm = nn.BatchNorm1d(out_features) if batch_norm else None
        self.act = make_activation(activation)
        self.gate = DropInGate() if dropin else None
        self.activation = activation
        self.site_id = site_id

    @property
    def producer(self) -> nn.Linear:
        """The block's Linear (``GrowthBlock.producer``)."""
        return self.linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.linear(x)
        if self.norm is not None:
            z = self.norm(z)
        z = self.act(z)
        return z if self.gate is None else self.gate(x, z)


def check_block_options(
    prefix: str, n: int, ids: object, activations: object, dropin: object, default_activation: str
) -> tuple[list[int], list[str], list[bool]]:
    """Validate the per-block spec lists ``<prefix>_ids``, ``_activations``, ``_dropin``
    (each None or one entry per block) and return them filled in."""
    out_ids = list(range(n)) if ids is None else ids
    if isinstance(out_ids, (str, bytes)) or not isinstance(out_ids, Sequence) or len(out_ids) != n:
        raise ValueError(f"{prefix}_ids must list one site id per block ({n}) or be null; got {ids!r}")
    if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in out_ids) or len(set(out_ids)) != n:
        raise ValueError(f"{prefix}_ids must be distinct ints >= 0; got {list(out_ids)!r}")
    acts = [default_activation] * n if activations is None else activations
    if isinstance(acts, (str, bytes)) or not isinstance(acts, Sequence) or len(acts) != n:
        raise ValueError(
            f"{prefix}_activations must list one activation name per block ({n}) or be null; got {activations!r}"
        )
    for a in acts:
        make_activation(a)  # "did you mean" on an unknown name
    gates = [False] * n if dropin is None else dropin
    if isinstance(gates, (str, bytes)) or not isinstance(gates, Sequence) or len(gates) != n:
        raise ValueError(f"{prefix}_dropin must list one true/false per block ({n}) or be null; got {dropin!r}")
    if not all(isinstance(g, bool) for g in gates):
        raise ValueError(f"{prefix}_dropin entries must be true or false; got {list(gates)!r}")
    return list(out_ids), list(acts), list(gates)


def check_gate_widths(prefix: str, blocks_io: list[tuple[int, int]], gates: list[bool]) -> None:
    for i, ((n_in, n_out), g) in enumerate(zip(blocks_io, gates)):
        if g and n_in != n_out:
            raise ValueError(
                f"{prefix}_dropin[{i}] is true but block {i} maps {n_in} -> {n_out} units; a DropIn block mixes its "
                "output with its input, so both widths must be equal"
            )


def stack_spec(
    prefix: str, blocks: Sequence[_Stacked], default_activation: str
) -> dict[str, list[int] | list[str] | list[bool]]:
    """The per-block spec keys that differ from their defaults (old specs stay unchanged)."""
    out: dict[str, list[int] | list[str] | list[bool]] = {}
    ids = [b.site_id for b in blocks]
    if ids != list(range(len(blocks))):
        out[f"{prefix}_ids"] = ids
    acts = [b.activation for b in blocks]
    if any(a != default_activation for a in acts):
        out[f"{prefix}_activations"] = acts
    gates = [b.gate is not None for b in blocks]
    if any(gates):
        out[f"{prefix}_dropin"] = gates
    return out


def next_id(blocks: Sequence[_Stacked]) -> int:
    return max((b.site_id for b in blocks), default=-1) + 1


def locked(names: list[str], blocks: Sequence[_Stacked]) -> dict[str, str]:
    """Sites whose width is tied to a DropIn block's skip path while its gate ramps."""
    out: dict[str, str] = {}
    for i, b in enumerate(blocks):
        if b.gate is not None:
            why = f"DropIn block {names[i]} mixes its output with its input until its gate opens"
            out[names[i]] = why
            if i > 0:
                out[names[i - 1]] = why
    return out


def new_block_like(block: B, like: torch.Tensor, training: bool) -> B:
    """``block`` on ``like``'s device and dtype, in the model's train/eval mode."""
    return block.to(device=like.device, dtype=like.dtype).train(training)
