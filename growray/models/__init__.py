"""Growable models and their JSON architecture specs (pure torch)."""

from growray.models.activations import ACTIVATIONS, make_activation
from growray.models.cnn import GrowableCNN
from growray.models.mlp import GrowableMLP
from growray.models.sites import GrowableModel, SiteModules

# Registration happens on import.
from growray.models.smooth_leaky import RandSmoothLeaky
from growray.models.spec import MODELS, ArchSpec, build_model

__all__ = [
    "ACTIVATIONS",
    "MODELS",
    "ArchSpec",
    "GrowableCNN",
    "GrowableMLP",
    "GrowableModel",
    "RandSmoothLeaky",
    "SiteModules",
    "build_model",
    "make_activation",
]
