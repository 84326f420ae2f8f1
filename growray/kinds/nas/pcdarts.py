"""PC-DARTS as a hook of the one trainer: DARTS' search on a supernet with partial channels and edge normalisation.

PC-DARTS (Xu et al., ICLR 2020) changes DARTS' supernet, not its search: each edge sends
``1 / K`` of its channels through the mixed op (``model.partial_channels: K``, 4 on CIFAR-10)
with a channel shuffle, and node inputs are weighted by per-edge ``beta`` (``model.
edge_normalization: true``), which also weights the edges in the discretization
(``growray.nas.pcdarts``; ``search_spaces/pcdarts_cnn.yaml``). The search is DARTS'
first-order alternation with the paper's settings in ``experiments/cifar10_pcdarts.yaml``
(batch 256, w lr 0.1 cosine, arch lr 6e-4, 15 warm-up epochs of weight training,
50 epochs; checked against ``yuhuixu1993/PC-DARTS``'s ``train_search.py`` and
``model_search.py``). The gap's discretized network keeps the partial-channel edges (its
weights are inherited; ``DartsSupernet.discretized``); the retrained network uses every channel.
"""

from __future__ import annotations

from typing import Any

from growray.config import ConfigIssue

from .config import NasConfig
from .darts import SUPERNETS, DartsHook
from .methods import NAS_METHODS

__all__ = ["PcDartsHook"]


@NAS_METHODS.register("pcdarts", supernet=SUPERNETS, space="pcdarts_cnn")
class PcDartsHook(DartsHook):
    """PC-DARTS: DARTS' search on a partial-channel, edge-normalised supernet."""

    method = "pcdarts"

    @classmethod
    def check_model(cls, model: dict[str, Any], cfg: NasConfig) -> list[ConfigIssue]:
        if model.get("partial_channels") is None and not model.get("edge_normalization"):
            return [
                ConfigIssue(
                    "model.partial_channels",
                    "PC-DARTS needs partial channels (model.partial_channels: K, e.g. 4) and/or "
                    "model.edge_normalization: true (e.g. model: {space: pcdarts_cnn}); without either it is DARTS",
                    None,
                )
            ]
        return []
