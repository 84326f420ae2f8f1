"""A multilayer perceptron whose hidden widths can grow and into which layers can be inserted."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from growray.checks import check_int
from growray.models.activations import make_activation
from growray.models.sites import SiteModules
from growray.models.spec import MODELS, ArchSpec
from growray.registry import UnknownNameError

__all__ = ["DropInGate", "GrowableMLP"]


class DropInGate(nn.Module):
    """Gradual DropIn mixing of a block's output with its input (Smith et al. 2016).

    ``y = (1 - m) * x + m * z`` where ``x`` is the block's input, ``z`` its output and ``m`` a
    Bernoulli mask per sample and unit (per channel for feature maps, broadcast over H, W)
    with P(m = 1) = ``value()``. In eval mode the expectation ``(1 - g) * x + g * z`` is used.
    At ``g = 0`` the output is exactly ``x``; at ``g = 1`` exactly ``z``.

    The state is two integer buffers (so it is checkpointed with ``state_dict`` and kept by
    ``.to(dtype)``): ``progress`` and ``steps``; ``g = progress / steps``, or 1 (open) when
    ``steps`` is 0. A gate built from a spec starts open (a network rebuilt from its spec
    alone has nothing to preserve); ``load_state_dict`` restores a ramping gate.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("progress", torch.zeros((), dtype=torch.long))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def start(self, steps: int) -> None:
        """Close the gate (value 0); ``advance`` opens it linearly over ``steps`` calls."""
        self.progress.fill_(0)
        self.steps.fill_(check_int("steps", steps, minimum=1))

    def advance(self) -> None:
        """One optimizer step: ``progress += 1``, never beyond ``steps`` (no host sync)."""
        self.progress.add_(1).clamp_(max=self.steps)

    def value(self) -> torch.Tensor:
        """The gate g in [0, 1] as a 0-d float tensor: P(use the new block)."""
        steps = self.steps.to(torch.float32)
        return torch.where(steps > 0, self.progress.to(torch.float32) / steps.clamp(min=1.0), torch.ones_like(steps))

    def is_open(self) -> bool:
        """True once the gate has reached 1 (syncs with the device)."""
        return bool(self.progress >= self.steps)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if x.shape != z.shape:
            raise ValueError(
                f"a DropIn block needs its input and output to have the same shape; got {tuple(x.shape)} -> {tuple(z.shape)}"
            )
        g = self.value().to(z.dtype)
        if not self.training:
            return (1 - g) * x + g * z
        probs = g.expand(z.shape[:2] + (1,) * (z.dim() - 2))
        m = torch.bernoulli(probs)
        return (1 - m) * x + m * z


class _HiddenBlock(nn.Module):
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.linear(x)
        if self.norm is not None:
            z = self.norm(z)
        z = self.act(z)
        return z if self.gate is None else self.gate(x, z)


def _check_input_shape(input_shape: object) -> tuple[int, ...]:
    if not isinstance(input_shape, Sequence) or isinstance(input_shape, str) or len(input_shape) == 0:
        raise ValueError(f"input_shape must be a non-empty sequence of positive ints; got {input_shape!r}")
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in input_shape):
        raise ValueError(f"input_shape must contain positive ints (>= 1); got {list(input_shape)!r}")
    return tuple(input_shape)


def _check_block_options(
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


def _check_gate_widths(prefix: str, blocks_io: list[tuple[int, int]], gates: list[bool]) -> None:
    for i, ((n_in, n_out), g) in enumerate(zip(blocks_io, gates)):
        if g and n_in != n_out:
            raise ValueError(
                f"{prefix}_dropin[{i}] is true but block {i} maps {n_in} -> {n_out} units; a DropIn block mixes its "
                "output with its input, so both widths must be equal"
            )


def _stack_spec(prefix: str, blocks: nn.ModuleList, default_activation: str) -> dict[str, list]:
    """The per-block spec keys that differ from their defaults (old specs stay unchanged)."""
    out: dict[str, list] = {}
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


def _next_id(blocks: nn.ModuleList) -> int:
    return max((b.site_id for b in blocks), default=-1) + 1


def _locked(names: list[str], blocks: nn.ModuleList) -> dict[str, str]:
    """Sites whose width is tied to a DropIn block's skip path while its gate ramps."""
    out: dict[str, str] = {}
    for i, b in enumerate(blocks):
        if b.gate is not None:
            why = f"DropIn block {names[i]} mixes its output with its input until its gate opens"
            out[names[i]] = why
            if i > 0:
                out[names[i - 1]] = why
    return out


def _new_block_like(block: nn.Module, like: torch.Tensor, training: bool) -> nn.Module:
    """``block`` on ``like``'s device and dtype, in the model's train/eval mode."""
    return block.to(device=like.device, dtype=like.dtype).train(training)


@MODELS.register("mlp")
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
        if not isinstance(batch_norm, bool):
            raise ValueError(f"batch_norm must be true or false; got {batch_norm!r}")
        make_activation(activation)  # fail early, with "did you mean", on an unknown name
        ids, acts, gates = _check_block_options(
            "hidden", len(hidden), hidden_ids, hidden_activations, hidden_dropin, activation
        )
        self.n_classes = n_classes
        self.activation = activation
        self.batch_norm = batch_norm
        n_in = math.prod(self.input_shape)
        ins = [n_in, *hidden[:-1]]
        _check_gate_widths("hidden", list(zip(ins, hidden)), gates)
        self.hidden = nn.ModuleList(
            _HiddenBlock(i, w, a, batch_norm, g, k) for i, w, a, g, k in zip(ins, hidden, acts, gates, ids)
        )
        self.head = nn.Linear(hidden[-1] if hidden else n_in, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for block in self.hidden:
            x = block(x)
        return self.head(x)

    def sites(self) -> list[str]:
        """Width sites in forward order: ``hidden.<id>`` (``hidden.0``, ``hidden.1``, ... until a
        layer is inserted)."""
        return [f"hidden.{b.site_id}" for b in self.hidden]

    def widths(self) -> dict[str, int]:
        return {f"hidden.{b.site_id}": b.linear.out_features for b in self.hidden}

    def _index(self, site: str) -> int:
        sites = self.sites()
        if site not in sites:
            raise UnknownNameError("site", site, sites)
        return sites.index(site)

    def block(self, site: str) -> nn.Module:
        """The block of ``site``: ``.linear``, ``.norm`` (or None), ``.act``, ``.gate`` (or None)."""
        return self.hidden[self._index(site)]

    def site_modules(self, site: str) -> SiteModules:
        """Producer Linear, optional BatchNorm1d and consumer Linear of ``site``."""
        i = self._index(site)
        block = self.hidden[i]
        consumer = self.hidden[i + 1].linear if i + 1 < len(self.hidden) else self.head
        return SiteModules(producer=block.linear, norm=block.norm, consumer=consumer, act=block.act)

    def insert_block(self, site: str, activation: str | None = None, dropin: bool = False) -> str:
        """Insert a new hidden block right after ``site``, of the same width; returns its site name.

        The block is Linear(w, w) -> (BatchNorm1d if the model uses BN) -> activation, in
        torch's default random init (a depth operator sets its weights); with ``dropin`` it
        gets a ``DropInGate`` (open until ``gate.start`` closes it). ``activation`` defaults
        to the activation of ``site``'s block.
        """
        i = self._index(site)
        prev = self.hidden[i]
        act = prev.activation if activation is None else activation
        w = prev.linear.out_features
        new = _HiddenBlock(w, w, act, self.batch_norm, dropin, _next_id(self.hidden))
        self.hidden.insert(i + 1, _new_block_like(new, prev.linear.weight, self.training))
        return f"hidden.{new.site_id}"

    def remove_dropin(self, site: str) -> None:
        """Drop the DropIn gate of ``site``'s block (exact once the gate is open)."""
        self.block(site).gate = None

    def locked_sites(self) -> dict[str, str]:
        """Sites whose width must not change now, with the reason (a ramping DropIn block
        ties its width to its input's)."""
        return _locked(self.sites(), self.hidden)

    def spec(self) -> ArchSpec:
        """The current (possibly grown or deepened) architecture."""
        return ArchSpec(
            kind="mlp",
            params={
                "input_shape": list(self.input_shape),
                "n_classes": self.n_classes,
                "hidden": [b.linear.out_features for b in self.hidden],
                "activation": self.activation,
                "batch_norm": self.batch_norm,
                **_stack_spec("hidden", self.hidden, self.activation),
            },
        )
