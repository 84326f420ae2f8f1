"""Cell-based NAS in pure torch: DARTS ops, genotypes, the evaluation network, the supernet, the architect.

Importing this package registers the ``cell_network`` and ``darts_supernet`` models in
``growray.models.MODELS`` and the candidate ops in ``OPS``.
"""

from growray.nas.architect import DartsArchitect, arch_gradient
from growray.nas.bn import batch_statistics, recalibrate_batchnorm
from growray.nas.darts import DartsSupernet, MixedOp, SearchCell
from growray.nas.genotype import (
    Genotype,
    alpha_entropy,
    count_op,
    discretize,
    n_edges,
    skip_fraction,
)
from growray.nas.network import CellNetwork
from growray.nas.ops import DARTS_OPS, ENAS_OPS, OPS, PARAMETER_FREE_OPS, make_op

__all__ = [
    "DARTS_OPS",
    "ENAS_OPS",
    "OPS",
    "PARAMETER_FREE_OPS",
    "CellNetwork",
    "DartsArchitect",
    "DartsSupernet",
    "Genotype",
    "MixedOp",
    "SearchCell",
    "alpha_entropy",
    "arch_gradient",
    "batch_statistics",
    "count_op",
    "discretize",
    "make_op",
    "n_edges",
    "recalibrate_batchnorm",
    "skip_fraction",
]

# ENAS registers the ``enas_supernet`` model on import (it builds on the modules above).
from growray.nas.enas import EnasController, EnasSearch, EnasSupernet

__all__ += ["EnasController", "EnasSearch", "EnasSupernet"]
