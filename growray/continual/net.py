"""``continual_mlp``: an MLP of one or more columns with task heads, as continual methods need it.

- **Columns** (Progressive Neural Networks, Rusu et al. 2016): column k has the same depth as
  column 0; with ``laterals`` its layer l > 0 and its heads also read every earlier column's
  layer l-1 through a lateral adapter: h_l^k = f(W_l^k h_{l-1}^k + sum_{j<k} U_l^{k:j} h_{l-1}^j)
  (the paper's eq. 1). Departure: the adapters are linear (U), not the paper's non-linear
  adapter sigma(V alpha h) with a learned scale and a dimension-reducing V (its §2 "Adapters").
  Columns below ``frozen_columns`` (their laterals and heads too) have ``requires_grad`` off.
- **Heads**: ``heads[h] = [column, n_logits]``; with ``task_heads`` head t answers task t (task
  id given), else head 0 answers every task (class-incremental).
- **Unit birth tasks** (DEN, Yoon et al. 2018): with ``births``, unit i of layer l of column 0
  was born at task ``births[l][i]``; answering task t masks the units born after t, so earlier
  tasks see the network they were trained with (the paper's timestamped inference).

Every structural change goes through methods that keep the constructor's module order, so
``build_model(model.spec())`` always has the same parameters in the same order (checkpoints
and the optimizer's parameter groups rely on it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import nn

from growray.checks import check_bool, check_int
from growray.models import MODELS, ArchSpec, make_activation

__all__ = ["ContinualMLP"]


def _widths(name: str, ws: object) -> list[int]:
    if isinstance(ws, (str, bytes)) or not isinstance(ws, Sequence) or not ws:
        raise ValueError(f"{name} must be a non-empty list of widths (ints >= 1); got {ws!r}")
    return [check_int(f"{name}[{i}]", w, minimum=1) for i, w in enumerate(ws)]


@MODELS.register("continual_mlp", description="MLP columns with task heads (progressive nets, DEN, EWC)")
class ContinualMLP(nn.Module):
    """Flatten, then columns of Linear -> activation layers, then task heads (module docstring).

    Args:
        input_shape: one sample's shape; supplied by growray.
        n_classes: the dataset's classes; supplied by growray (the default head's logits).
        hidden: widths of the first column's hidden layers (when ``columns`` is null).
        activation: a name registered in ``ACTIVATIONS``.
        columns: every column's hidden widths (null: one column of ``hidden``); set by grown specs.
        heads: ``[column, n_logits]`` per head (null: one head of ``n_classes`` on column 0).
        task_heads: head t answers task t (task-incremental); false: head 0 answers all.
        laterals: lateral adapters from every earlier column (progressive networks).
        frozen_columns: columns 0..frozen_columns-1, their laterals and heads get no gradient.
        births: per hidden layer of column 0, each unit's birth task (null: no timestamps).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_classes: int,
        hidden: list[int] = [64],  # noqa: B006 - never mutated; the config schema needs a default
        activation: str = "relu",
        columns: list[list[int]] | None = None,
        heads: list[list[int]] | None = None,
        task_heads: bool = False,
        laterals: bool = True,
        frozen_columns: int = 0,
        births: list[list[int]] | None = None,
    ):
        super().__init__()
        self.input_shape = tuple(check_int(f"input_shape[{i}]", d, minimum=1) for i, d in enumerate(input_shape))
        self.n_classes = check_int("n_classes", n_classes, minimum=1)
        self.hidden = _widths("hidden", hidden)
        make_activation(activation)  # fail early, with "did you mean"
        self.activation = activation
        self.act = make_activation(activation)
        self.task_heads = check_bool("task_heads", task_heads)
        self.laterals = check_bool("laterals", laterals)
        cols = [_widths(f"columns[{k}]", c) for k, c in enumerate(columns)] if columns else [list(self.hidden)]
        if len({len(c) for c in cols}) != 1:
            raise ValueError(f"every column has the same number of layers; got {cols}")
        self.n_in = math.prod(self.input_shape)
        self.col_widths: list[list[int]] = []
        self.columns = nn.ModuleList()
        self.lateral = nn.ModuleList()
        self.heads = nn.ModuleList()
        self.head_lateral = nn.ModuleList()
        self.head_column: list[int] = []
        for c in cols:
            self.add_column(c)
        for k, (col, n) in enumerate(heads if heads else [[0, self.n_classes]]):
            if not 0 <= int(col) < len(cols):
                raise ValueError(f"heads[{k}] reads column {col}; there are {len(cols)} columns")
            self.add_head(int(col), check_int(f"heads[{k}][1]", n, minimum=1))
        self.births: list[list[int]] | None = None
        if births is not None:
            if len(births) != len(cols[0]) or any(len(b) != w for b, w in zip(births, cols[0])):
                raise ValueError(f"births must give one task per unit of column 0 {cols[0]}; got {births}")
            self.births = [[int(t) for t in b] for b in births]
        self.frozen_columns = 0
        self.freeze_columns(check_int("frozen_columns", frozen_columns, minimum=0, maximum=len(cols)))
        self.task = 0

    # ------------------------------------------------------------------ structure
    @property
    def n_columns(self) -> int:
        return len(self.columns)

    @property
    def depth(self) -> int:
        return len(self.col_widths[0])

    def add_column(self, widths: Sequence[int]) -> int:
        """Append a column (and its laterals from every earlier column); returns its index."""
        widths = list(widths)
        if self.col_widths and len(widths) != self.depth:
            raise ValueError(f"a new column needs {self.depth} layers; got {widths}")
        k = len(self.col_widths)
        ins = [self.n_in, *widths[:-1]]
        self.columns.append(nn.ModuleList(nn.Linear(i, o) for i, o in zip(ins, widths)))
        lat = nn.ModuleDict()
        if self.laterals:
            for layer in range(1, len(widths)):
                for j in range(k):
                    lat[f"l{layer}_c{j}"] = nn.Linear(self.col_widths[j][layer - 1], widths[layer], bias=False)
        self.lateral.append(lat)
        self.col_widths.append(widths)
        return k

    def add_head(self, column: int, n_logits: int) -> int:
        """Append a head on ``column`` (with laterals from the earlier columns); returns its index."""
        self.heads.append(nn.Linear(self.col_widths[column][-1], n_logits))
        lat = nn.ModuleDict()
        if self.laterals:
            for j in range(column):
                lat[f"c{j}"] = nn.Linear(self.col_widths[j][-1], n_logits, bias=False)
        self.head_lateral.append(lat)
        self.head_column.append(column)
        return len(self.heads) - 1

    def freeze_columns(self, n: int) -> None:
        """Columns 0..n-1 (their laterals and the heads on them) stop getting gradients."""
        self.frozen_columns = n
        for k in range(self.n_columns):
            for p in [*self.columns[k].parameters(), *self.lateral[k].parameters()]:
                p.requires_grad_(k >= n)
        for h, col in enumerate(self.head_column):
            for p in [*self.heads[h].parameters(), *self.head_lateral[h].parameters()]:
                p.requires_grad_(col >= n)

    def head_of(self, task: int) -> int:
        return task if self.task_heads else 0

    def set_task(self, task: int) -> None:
        """Answer ``task`` from now on (its head, its column, its units)."""
        head = self.head_of(check_int("task", task, minimum=0))
        if head >= len(self.heads):
            raise ValueError(f"task {task} has no head yet (the model has {len(self.heads)})")
        self.task = task

    def column_of(self, task: int) -> int:
        return self.head_column[self.head_of(task)]

    # ------------------------------------------------------------------ forward
    def _unit_mask(self, layer: int, device: torch.device) -> torch.Tensor | None:
        if self.births is None or max(self.births[layer], default=0) <= self.task:
            return None
        return (torch.tensor(self.births[layer], device=device) <= self.task).to(torch.float32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        head = self.head_of(self.task)
        col = self.head_column[head]
        used = range(col + 1) if self.laterals else [col]
        states: dict[int, list[torch.Tensor]] = {}
        for k in used:
            hs: list[torch.Tensor] = []
            h = x
            lateral = cast(nn.ModuleDict, self.lateral[k])
            for layer in range(self.depth):
                z = self.linear(k, layer)(h)
                if layer > 0 and self.laterals:
                    for j in range(k):
                        z = z + lateral[f"l{layer}_c{j}"](states[j][layer - 1])
                h = self.act(z)
                if k == 0:
                    mask = self._unit_mask(layer, h.device)
                    if mask is not None:
                        h = h * mask
                hs.append(h)
            states[k] = hs
        out = self.head(head)(states[col][-1])
        if self.laterals:
            head_lateral = cast(nn.ModuleDict, self.head_lateral[head])
            for j in range(col):
                out = out + head_lateral[f"c{j}"](states[j][-1])
        return out

    # ------------------------------------------------------------------ typed access
    def linear(self, column: int, layer: int) -> nn.Linear:
        """Layer ``layer`` of column ``column``."""
        lin = cast(nn.ModuleList, self.columns[column])[layer]
        assert isinstance(lin, nn.Linear)
        return lin

    def head(self, h: int) -> nn.Linear:
        lin = self.heads[h]
        assert isinstance(lin, nn.Linear)
        return lin

    def layers0(self) -> list[nn.Linear]:
        """Column 0's hidden layers."""
        return [self.linear(0, layer) for layer in range(self.depth)]

    # ------------------------------------------------------------------ units of column 0 (DEN)
    def consumers(self, layer: int) -> list[nn.Linear]:
        """The Linear layers that read column 0's ``layer``: the next layer, or every head on column 0."""
        if layer + 1 < self.depth:
            return [self.linear(0, layer + 1)]
        return [self.head(h) for h, c in enumerate(self.head_column) if c == 0]

    def _set_consumers(self, layer: int, new: list[nn.Linear]) -> None:
        if layer + 1 < self.depth:
            cast(nn.ModuleList, self.columns[0])[layer + 1] = new[0]
            return
        for h, lin in zip([h for h, c in enumerate(self.head_column) if c == 0], new):
            self.heads[h] = lin

    @torch.no_grad()
    def resize_units(
        self,
        layer: int,
        keep: torch.Tensor,
        new_in: torch.Tensor,
        new_bias: torch.Tensor,
        new_out: Sequence[torch.Tensor],
        birth: int,
    ) -> None:
        """Column 0's ``layer`` keeps the units ``keep`` (indices, in order) and gains
        ``len(new_in)`` units born at ``birth``: fan-in rows ``new_in``, biases ``new_bias`` and,
        per consumer (``consumers(layer)``), fan-out columns ``new_out[c]``."""
        if self.n_columns != 1:
            raise ValueError("unit surgery needs a single-column model")
        old = self.linear(0, layer)
        keep = keep.to(torch.long)
        weight = torch.cat([old.weight[keep], new_in.to(old.weight)])
        bias = torch.cat([old.bias[keep], new_bias.to(old.bias)])
        lin = nn.Linear(old.in_features, len(weight)).to(old.weight.device)
        lin.weight.copy_(weight)
        lin.bias.copy_(bias)
        cast(nn.ModuleList, self.columns[0])[layer] = lin
        replaced = []
        for cons, cols in zip(self.consumers(layer), new_out):
            w = torch.cat([cons.weight[:, keep], cols.to(cons.weight)], dim=1)
            nxt = nn.Linear(w.shape[1], cons.out_features).to(w.device)
            nxt.weight.copy_(w)
            nxt.bias.copy_(cons.bias)
            replaced.append(nxt)
        self._set_consumers(layer, replaced)
        self.col_widths[0][layer] = len(weight)
        if self.births is None:
            self.births = [[0] * w for w in self.col_widths[0]]
            self.births[layer] = [0] * len(keep) + [birth] * len(new_in)
        else:
            self.births[layer] = [self.births[layer][i] for i in keep.tolist()] + [birth] * len(new_in)
        self.freeze_columns(self.frozen_columns)

    # ------------------------------------------------------------------ spec
    def sites(self) -> list[str]:
        return list(self.widths())

    def widths(self) -> dict[str, int]:
        """Hidden widths ``c<column>.h<layer>``, then each head's logits ``head<h>``."""
        out = {f"c{k}.h{layer}": w for k, ws in enumerate(self.col_widths) for layer, w in enumerate(ws)}
        out.update({f"head{h}": self.head(h).out_features for h in range(len(self.heads))})
        return out

    def spec(self) -> ArchSpec:
        params: dict[str, Any] = {
            "input_shape": list(self.input_shape),
            "n_classes": self.n_classes,
            "hidden": list(self.hidden),
            "activation": self.activation,
            "columns": [list(c) for c in self.col_widths],
            "heads": [[c, self.head(h).out_features] for h, c in enumerate(self.head_column)],
            "task_heads": self.task_heads,
            "laterals": self.laterals,
            "frozen_columns": self.frozen_columns,
            "births": [list(b) for b in self.births] if self.births is not None else None,
        }
        return ArchSpec(kind="continual_mlp", params=params)
