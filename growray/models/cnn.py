"""A VGG-style convolutional network whose channel counts and head widths can grow and into
which conv or Linear blocks can be inserted."""

from __future__ import annotations

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

__all__ = ["GrowableCNN"]


class _ConvBlock(nn.Module):
    """Conv2d (same padding) -> (BatchNorm2d) -> activation (-> DropIn gate) -> (MaxPool2d(2));
    one width site. ``activation`` and ``site_id`` (the ``conv.<id>`` name) live on the block."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int,
        activation: str,
        batch_norm: bool,
        pool: bool,
        dropin: bool = False,
        site_id: int = 0,
    ):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2)
        self.norm = nn.BatchNorm2d(out_ch) if batch_norm else None
        self.act = make_activation(activation)
        self.gate = DropInGate() if dropin else None
        self.pool = nn.MaxPool2d(2) if pool else None
        self.activation = activation
        self.site_id = site_id

    @property
    def producer(self) -> nn.Conv2d:
        """The block's Conv2d (``GrowthBlock.producer``)."""
        return self.conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.conv(x)
        if self.norm is not None:
            z = self.norm(z)
        z = self.act(z)
        if self.gate is not None:
            z = self.gate(x, z)
        return z if self.pool is None else self.pool(z)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_widths(name: str, widths: object, *, allow_empty: bool) -> list[int]:
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence):
        raise ValueError(f"{name} must be a list of widths (ints >= 1); got {widths!r}")
    if not allow_empty and len(widths) == 0:
        raise ValueError(f"{name} must list at least one width (ints >= 1); got []")
    return [check_int(f"{name}[{i}]", w, minimum=1) for i, w in enumerate(widths)]


def _check_pool_after(pool_after: object, n_convs: int) -> list[int]:
    if pool_after is None:
        return list(range(n_convs))
    if isinstance(pool_after, (str, bytes)) or not isinstance(pool_after, Sequence):
        raise ValueError(
            f"pool_after must be a list of conv indices or null (pool after every conv); got {pool_after!r}"
        )
    for i in pool_after:
        if not _is_int(i) or not 0 <= i < n_convs:
            raise ValueError(
                f"pool_after entries must be conv indices in 0..{n_convs - 1} (one conv per channels entry); "
                f"got {i!r} in pool_after={list(pool_after)!r}"
            )
    if len(set(pool_after)) != len(pool_after):
        raise ValueError(f"pool_after must not repeat an index; got {list(pool_after)!r}")
    return sorted(pool_after)


@MODELS.register("cnn", internal=("conv_ids", "conv_dropin", "hidden_ids", "hidden_dropin"))  # grown specs
class GrowableCNN(nn.Module):
    """VGG-style stages, then a fully connected head; every conv and hidden Linear can widen,
    and conv or Linear blocks can be inserted (``insert_block``).

    Each conv block is Conv2d(kernel_size, padding=kernel_size // 2) -> (BatchNorm2d) ->
    activation -> (MaxPool2d(2) when its index is in ``pool_after``). The head flattens
    (channel-major: channel c owns columns ``c*H*W .. (c+1)*H*W - 1``), then per hidden
    layer Linear -> (BatchNorm1d) -> activation, then Linear(n_classes).

    Sites, in forward order: ``conv.<id>`` ..., then ``fc.<id>`` ... Constructor blocks have
    ids 0, 1, ...; an inserted block gets the next unused id of its kind, so names stay
    stable during a run but are not in forward order after an insertion (``sites()`` is).
    The last conv site feeds the head through the flatten (``SiteModules.spatial`` = H*W).

    Args:
        input_shape: ``(C, H, W)`` of one sample; supplied by growray.
        n_classes: number of logits; supplied by growray.
        channels: output channels of each conv, one conv per entry (at least one), each >= 1.
        pool_after: indices (forward positions) of the convs followed by a 2x2 max-pool;
            null pools after every conv.
        kernel_size: odd kernel size >= 1 of every conv ("same" padding keeps H and W).
        hidden: widths of the head's hidden Linear layers (may be empty).
        activation: a name registered in ``ACTIVATIONS``.
        batch_norm: BatchNorm2d after each conv and BatchNorm1d after each hidden Linear.
        conv_ids, hidden_ids: site ids of the conv / hidden Linear blocks (null: 0, 1, ...).
        conv_activations, hidden_activations: per-block activation names (null: ``activation``).
        conv_dropin, hidden_dropin: per block, whether a DropIn gate mixes it in (null: none);
            a gated block needs equal input and output widths.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_classes: int,
        channels: list[int] = [16, 32],  # noqa: B006 - never mutated; the config schema needs a default
        pool_after: list[int] | None = None,
        kernel_size: int = 3,
        hidden: list[int] = [],  # noqa: B006
        activation: str = "relu",
        batch_norm: bool = True,
        conv_ids: list[int] | None = None,
        conv_activations: list[str] | None = None,
        conv_dropin: list[bool] | None = None,
        hidden_ids: list[int] | None = None,
        hidden_activations: list[str] | None = None,
        hidden_dropin: list[bool] | None = None,
    ):
        super().__init__()
        if (
            isinstance(input_shape, (str, bytes))
            or not isinstance(input_shape, Sequence)
            or len(input_shape) != 3
            or not all(_is_int(d) and d >= 1 for d in input_shape)
        ):
            raise ValueError(
                f"input_shape must be (C, H, W) of positive ints for the cnn model (an image dataset); got {input_shape!r}"
            )
        n_classes = check_int("n_classes", n_classes, minimum=1)
        channels = _check_widths("channels", channels, allow_empty=False)
        hidden = _check_widths("hidden", hidden, allow_empty=True)
        pools = _check_pool_after(pool_after, len(channels))
        if not _is_int(kernel_size) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be an odd int >= 1 (same padding); got {kernel_size!r}")
        check_bool("batch_norm", batch_norm)
        make_activation(activation)  # fail early, with "did you mean", on an unknown name
        c_ids, c_acts, c_gates = check_block_options(
            "conv", len(channels), conv_ids, conv_activations, conv_dropin, activation
        )
        h_ids, h_acts, h_gates = check_block_options(
            "hidden", len(hidden), hidden_ids, hidden_activations, hidden_dropin, activation
        )
        c, h, w = input_shape
        fh, fw = h >> len(pools), w >> len(pools)
        if fh < 1 or fw < 1:
            raise ValueError(
                f"{len(pools)} max-pools (pool_after={pools}) shrink input_shape {tuple(input_shape)} to "
                f"{fh}x{fw}; each 2x2 pool halves H and W (rounding down): pool fewer convs or use larger inputs"
            )
        self.input_shape = (c, h, w)
        self.n_classes = n_classes
        self.kernel_size = kernel_size
        self.activation = activation
        self.batch_norm = batch_norm
        self.feature_hw = (fh, fw)
        c_ins = [c, *channels[:-1]]
        check_gate_widths("conv", list(zip(c_ins, channels)), c_gates)
        self.convs = nn.ModuleList(
            _ConvBlock(i, o, kernel_size, a, batch_norm, k in pools, g, sid)
            for k, (i, o, a, g, sid) in enumerate(zip(c_ins, channels, c_acts, c_gates, c_ids))
        )
        n_in = channels[-1] * fh * fw
        h_ins = [n_in, *hidden[:-1]]
        check_gate_widths("hidden", list(zip(h_ins, hidden)), h_gates)
        self.hidden = nn.ModuleList(
            HiddenBlock(i, o, a, batch_norm, g, sid) for i, o, a, g, sid in zip(h_ins, hidden, h_acts, h_gates, h_ids)
        )
        self.head = nn.Linear(hidden[-1] if hidden else n_in, n_classes)

    @property
    def pool_after(self) -> list[int]:
        """Forward positions of the convs followed by a max-pool."""
        return [i for i, b in enumerate(self._convs()) if b.pool is not None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.convs:
            x = block(x)
        x = x.flatten(1)
        for block in self.hidden:
            x = block(x)
        return self.head(x)

    def _convs(self) -> list[_ConvBlock]:
        return typed_blocks(self.convs, _ConvBlock)

    def _fcs(self) -> list[HiddenBlock]:
        return typed_blocks(self.hidden, HiddenBlock)

    def sites(self) -> list[str]:
        """Width sites, in forward order: ``conv.<id>`` ..., then ``fc.<id>`` ..."""
        return [f"conv.{b.site_id}" for b in self._convs()] + [f"fc.{b.site_id}" for b in self._fcs()]

    def widths(self) -> dict[str, int]:
        out = {f"conv.{b.site_id}": b.conv.out_channels for b in self._convs()}
        out.update({f"fc.{b.site_id}": b.linear.out_features for b in self._fcs()})
        return out

    def _locate(self, site: str) -> tuple[bool, int]:
        """Whether ``site`` is a conv site, and its position among the conv or fc blocks."""
        sites = self.sites()
        if site not in sites:
            raise UnknownNameError("site", site, sites)
        i = sites.index(site)
        n_convs = len(self.convs)
        return (True, i) if i < n_convs else (False, i - n_convs)

    def block(self, site: str) -> _ConvBlock | HiddenBlock:
        """The block of ``site``: ``.conv``/``.linear``, ``.norm`` (or None), ``.act``, ``.gate``."""
        conv, i = self._locate(site)
        return self._convs()[i] if conv else self._fcs()[i]

    def site_modules(self, site: str) -> SiteModules:
        """Producer, optional BatchNorm, consumer, activation and ``spatial`` of ``site``.

        The last conv's consumer is the first head Linear, reached through the flatten:
        ``spatial`` is then H*W of the final feature map (1 for every other site).
        """
        conv, i = self._locate(site)
        convs, fcs = self._convs(), self._fcs()
        first_fc = fcs[0].linear if fcs else self.head
        if conv:
            block = convs[i]
            if i + 1 < len(convs):
                return SiteModules(block.conv, block.norm, convs[i + 1].conv, block.act)
            fh, fw = self.feature_hw
            return SiteModules(block.conv, block.norm, first_fc, block.act, spatial=fh * fw)
        consumer = fcs[i + 1].linear if i + 1 < len(fcs) else self.head
        return SiteModules(fcs[i].linear, fcs[i].norm, consumer, fcs[i].act)

    def insert_block(self, site: str, activation: str | None = None, dropin: bool = False) -> str:
        """Insert a new block right after ``site``, of the same width; returns its site name.

        After a conv site: Conv2d(c, c, ``kernel_size``, stride 1, same padding) ->
        (BatchNorm2d) -> activation, placed *before* that site's max-pool (the pool moves to
        the new block), so every shape downstream is unchanged. After an ``fc`` site:
        Linear(w, w) -> (BatchNorm1d) -> activation. Torch's default random init (a depth
        operator sets the weights); ``dropin`` adds a ``DropInGate``; ``activation``
        defaults to the activation of ``site``'s block.
        """
        conv, i = self._locate(site)
        if conv:
            prev = self._convs()[i]
            act = prev.activation if activation is None else activation
            sid = next_id(self._convs())
            c = prev.conv.out_channels
            new = _ConvBlock(c, c, self.kernel_size, act, self.batch_norm, prev.pool is not None, dropin, sid)
            prev.pool = None
            self.convs.insert(i + 1, new_block_like(new, prev.conv.weight, self.training))
            return f"conv.{sid}"
        fc = self._fcs()[i]
        act = fc.activation if activation is None else activation
        sid = next_id(self._fcs())
        w = fc.linear.out_features
        new_fc = HiddenBlock(w, w, act, self.batch_norm, dropin, sid)
        self.hidden.insert(i + 1, new_block_like(new_fc, fc.linear.weight, self.training))
        return f"fc.{sid}"

    def remove_dropin(self, site: str) -> None:
        """Drop the DropIn gate of ``site``'s block (exact once the gate is open)."""
        self.block(site).gate = None

    def locked_sites(self) -> dict[str, str]:
        """Sites whose width must not change now, with the reason (a ramping DropIn block
        ties its width to its input's)."""
        sites = self.sites()
        n = len(self.convs)
        return {**locked(sites[:n], self._convs()), **locked(sites[n:], self._fcs())}

    def spec(self) -> ArchSpec:
        """The current (possibly grown or deepened) architecture."""
        return ArchSpec(
            kind="cnn",
            params={
                "input_shape": list(self.input_shape),
                "n_classes": self.n_classes,
                "channels": [b.conv.out_channels for b in self._convs()],
                "pool_after": self.pool_after,
                "kernel_size": self.kernel_size,
                "hidden": [b.linear.out_features for b in self._fcs()],
                "activation": self.activation,
                "batch_norm": self.batch_norm,
                **stack_spec("conv", self._convs(), self.activation),
                **stack_spec("hidden", self._fcs(), self.activation),
            },
        )
