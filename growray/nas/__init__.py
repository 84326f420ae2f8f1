"""Cell-based NAS in pure torch: DARTS ops, genotypes, the evaluation network, the supernet, the architect.

Importing this package registers the ``cell_network``, ``darts_supernet``, ``nb201_supernet``
and ``nb201_network`` models in ``growray.models.MODELS`` and the candidate ops in ``OPS``.
GDAS and PC-DARTS share the DARTS supernet code (``growray.nas.gdas``, ``growray.nas.pcdarts``);
ENAS searches its micro cells (``growray.nas.enas``) or NAS-Bench-201's (``growray.nas.enas_nb201``).
"""

from growray.nas.architect import DartsArchitect, arch_gradient
from growray.nas.bn import batch_statistics, recalibrate_batchnorm
from growray.nas.darts import DartsSupernet, MixedOp, SearchCell
from growray.nas.gdas import gumbel_hard, tau_at
from growray.nas.genotype import (
    Genotype,
    alpha_entropy,
    count_op,
    discretize,
    n_edges,
    skip_fraction,
)
from growray.nas.nb201 import Nb201Genotype, discretize_nb201, nb201_edges
from growray.nas.nb201_net import Nb201Network, Nb201Supernet
from growray.nas.nb201_table import (
    TableMissingError,
    benchmark_entry,
    package_table,
    table_available,
    table_dataset,
)
from growray.nas.network import CellNetwork
from growray.nas.ops import DARTS_OPS, ENAS_OPS, NB201_OPS, OPS, PARAMETER_FREE_OPS, make_op
from growray.nas.pcdarts import PartialMixedOp, channel_shuffle
from growray.nas.relaxed import RelaxedSupernet

__all__ = [
    "DARTS_OPS",
    "ENAS_OPS",
    "NB201_OPS",
    "OPS",
    "PARAMETER_FREE_OPS",
    "CellNetwork",
    "DartsArchitect",
    "DartsSupernet",
    "Genotype",
    "MixedOp",
    "Nb201Genotype",
    "Nb201Network",
    "Nb201Supernet",
    "PartialMixedOp",
    "RelaxedSupernet",
    "SearchCell",
    "TableMissingError",
    "alpha_entropy",
    "arch_gradient",
    "batch_statistics",
    "benchmark_entry",
    "channel_shuffle",
    "count_op",
    "discretize",
    "discretize_nb201",
    "gumbel_hard",
    "make_op",
    "n_edges",
    "nb201_edges",
    "package_table",
    "recalibrate_batchnorm",
    "skip_fraction",
    "table_available",
    "table_dataset",
    "tau_at",
]

# ENAS registers the ``enas_supernet`` model on import (it builds on the modules above).
from growray.nas.enas import EnasController, EnasSearch, EnasSupernet
from growray.nas.enas_nb201 import Nb201EnasController
from growray.nas.reinforce import CellController

__all__ += ["CellController", "EnasController", "EnasSearch", "EnasSupernet", "Nb201EnasController"]
