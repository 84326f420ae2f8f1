"""A multilayer perceptron whose hidden widths can grow and into which layers can be inserted."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from growray.checks import check_bool, check_int
from growray.models._blocks import (
    HiddenBlock,
    check_block_options,
    check_gate_widths,
    locked,
    new_block_like,
    next_id,
    stack_spec,
    typed_blocks,
)
from growray.models.activations import make_activation
from growray.models.dropin import DropInGate
from growray.models.sites import SiteModules
from growray.models.spec import MODELS, ArchSpec
from growray.registry import UnknownNameError

__all__ = ["DropInGate", "GrowableMLP"]


def _check_input_shape(input_shape: object) -> tuple[int, ...]:
    if not isinstance(input_shape, Sequence) or isinstance(input_shape, str) or len(input_shape) == 0:
        raise ValueError(f"input_shape must be a non-empty sequence of positive ints; got {input_shape!r}")
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in input_shape):
        raise ValueError(f"input_shape must contain positive ints (>= 1); got {list(input_shape)!r}")
    return tuple(input_shape)


@MODELS.register("mlp", internal=("hidden_ids", "hidden_dropin"))  # set by grown specs
class GrowableMLP(nn.Module):
    """Flatten, then per hidden layer Linear -> (BatchNorm1d) -> activation, then a Linear head.

    Site names are stable: block ``k`` of the constructor is ``hidden.k``; a block inserted
    later (``insert_block``) gets the next unused id, so names never change meaning during a
    run (metrics ``growth/width/<site>`` and event histories stay coherent), but ids are not
    in forward order once a layer was inserted: ``sites()`` gives the forward order.

    Args:
        input_shape: shape of one sample (without the batch dimension); supplied by growray.
        n_classes: number of logits; supplied by growray.
        hidden: initial widths of the hidden layers, each >= 1 (may be empty).
        activation: a name registered in ``ACTIVATIONS``.
        batch_norm: put a ``BatchNorm1d`` between each hidden Linear and its activation.
        hidden_ids: site id of each hidden block (null: 0, 1, ...); set by grown specs.
        hidden_activations: activation name of each hidden block (null: ``activation`` for all).
        hidden_dropin: per block, whether it is mixed in by a DropIn gate (null: none);
            a gated block needs equal input and output widths.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_classes: int,
        hidden: list[int] = [32],  # noqa: B006 - never mutated; the config schema needs a default
        activation: str = "relu",
        batch_norm: bool = False,
        hidden_ids: list[int] | None = None,
        hidden_activations: list[str] | None = None,
        hidden_dropin: list[bool] | None = None,
    ):
        super().__init__()
        self.input_shape = _check_input_shape(input_shape)
        n_classes = check_int("n_classes", n_classes, minimum=1)
        if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence):
            raise ValueError(f"hidden must be a list of widths (ints >= 1); got {hidden!r}")
        hidden = [check_int(f"hidden[{i}]", w, minimum=1) for i, w in enumerate(hidden)]
        check_bool("batch_norm", batch_norm)
        make_activation(activation)  # fail early, with "did you mean", on an unknown name
        ids, acts, gates = check_block_options(
            "hidden", len(hidden), hidden_ids, hidden_activations, hidden_dropin, activation
        )
        self.n_classes = n_classes
        self.activation = activation
        self.batch_norm = batch_norm
        n_in = math.prod(self.input_shape)
        ins = [n_in, *hidden[:-1]]
        check_gate_widths("hidden", list(zip(ins, hidden)), gates)
        self.hidden = nn.ModuleList(
            HiddenBlock(i, w, a, batch_norm, g, k) for i, w, a, g, k in zip(ins, hidden, acts, gates, ids)
        )
        self.head = nn.Linear(hidden[-1] if hidden else n_in, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for block in self.hidden:
            x = block(x)
        return self.head(x)

    def _blocks(self) -> list[HiddenBlock]:
        return typed_blocks(self.hidden, HiddenBlock)

    def sites(self) -> list[str]:
        """Width sites in forward order: ``hidden.<id>`` (``hidden.0``, ``hidden.1``, ... until a
        layer is inserted)."""
        return [f"hidden.{b.site_id}" for b in self._blocks()]

    def widths(self) -> dict[str, int]:
        return {f"hidden.{b.site_id}": b.linear.out_features for b in self._blocks()}

    def _index(self, site: str) -> int:
        sites = self.sites()
        if site not in sites:
            raise UnknownNameError("site", site, sites)
        return sites.index(site)

    def block(self, site: str) -> HiddenBlock:
        """The block of ``site``: ``.linear``, ``.norm`` (or None), ``.act``, ``.gate`` (or None)."""
        return self._blocks()[self._index(site)]

    def site_modules(self, site: str) -> SiteModules:
        """Producer Linear, optional BatchNorm1d and consumer Linear of ``site``."""
        i = self._index(site)
        blocks = self._blocks()
        consumer = blocks[i + 1].linear if i + 1 < len(blocks) else self.head
        return SiteModules(producer=blocks[i].linear, norm=blocks[i].norm, consumer=consumer, act=blocks[i].act)

    def insert_block(self, site: str, activation: str | None = None, dropin: bool = False) -> str:
        """Insert a new hidden block right after ``site``, of the same width; returns its site name.

        The block is Linear(w, w) -> (BatchNorm1d if the model uses BN) -> activation, in
        torch's default random init (a depth operator sets its weights); with ``dropin`` it
        gets a ``DropInGate`` (open until ``gate.start`` closes it). ``activation`` defaults
        to the activation of ``site``'s block.
        """
        i = self._index(site)
        prev = self._blocks()[i]
        act = prev.activation if activation is None else activation
        w = prev.linear.out_features
        new = HiddenBlock(w, w, act, self.batch_norm, dropin, next_id(self._blocks()))
        self.hidden.insert(i + 1, new_block_like(new, prev.linear.weight, self.training))
        return f"hidden.{new.site_id}"

    def remove_dropin(self, site: str) -> None:
        """Drop the DropIn gate of ``site``'s block (exact once the gate is open)."""
        self.block(site).gate = None

    def locked_sites(self) -> dict[str, str]:
        """Sites whose width must not change now, with the reason (a ramping DropIn block
        ties its width to its input's)."""
        return locked(self.sites(), self._blocks())

    def spec(self) -> ArchSpec:
        """The current (possibly grown or deepened) architecture."""
        return ArchSpec(
            kind="mlp",
            params={
                "input_shape": list(self.input_shape),
                "n_classes": self.n_classes,
                "hidden": [b.linear.out_features for b in self._blocks()],
                "activation": self.activation,
                "batch_norm": self.batch_norm,
                **stack_spec("hidden", self._blocks(), self.activation),
            },
        )
