"""Models built on the meta device for configuration checks, built once per spec.

``growray validate`` checks an experiment and then every bound of its search space, so the
same model spec is checked several times in one process (five times for
``experiments/cifar10_darts.yaml``). Building an 8-cell DARTS supernet on the meta device
still constructs and initialises every module, about 3 CPU-s each time on these machines;
a checked spec is therefore built once and the module shared.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from growray.models.spec import MODELS

__all__ = ["meta_model"]

_CACHE: OrderedDict[tuple[str, tuple[int, ...], int], nn.Module | Exception] = OrderedDict()
_CACHE_SIZE = 16


def meta_model(spec: Mapping[str, Any], input_shape: Sequence[int], n_classes: int) -> nn.Module:
    """``MODELS.build(spec, ...)`` on the meta device (no memory, no compute), cached by the
    spec's JSON, the input shape and the class count. The module is shared between callers:
    read it, never change it. A spec that fails to build raises the same error each time.

    Raises:
        ValueError, TypeError: what ``MODELS.build`` raised for this spec and shape.
    """
    key = (json.dumps(spec, sort_keys=True, default=repr), tuple(int(d) for d in input_shape), int(n_classes))
    hit = _CACHE.get(key)
    if hit is None:
        try:
            with torch.device("meta"):
                hit = MODELS.build(dict(spec), input_shape=tuple(input_shape), n_classes=int(n_classes))
        except (ValueError, TypeError) as exc:
            hit = exc
        _CACHE[key] = hit
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    else:
        _CACHE.move_to_end(key)
    if isinstance(hit, Exception):
        raise hit.with_traceback(None)
    return hit
