"""Conformance suites that every registered plug-in must pass (import them from tests).

Each is a pytest class (or a set of functions) to subclass or parametrise; they need pytest,
so none is imported here:

- ``growray.testing.initializers.InitializerConformance``, ``growray.testing.triggers.TriggerConformance``,
  ``growray.testing.deepeners.DeepenerConformance``: growth plug-ins (define the
  ``initializer`` / ``trigger_factory`` / ``deepener`` fixture);
- ``growray.testing.models``: every registered model (shapes, spec round trip, sites);
- ``growray.testing.datasets``: every registered dataset (``describe``, seeded splits, ranges);
- ``growray.testing.supernets``: NAS supernets (weight/architecture parameters, discretization);
- ``growray.testing.kinds.KindConformance``: experiment kinds (section, checks, metrics, resume);
- ``growray.testing.updaters.UpdaterConformance``: sparse mask updaters (densities kept, drop/regrow counts exact).
"""

__all__: list[str] = []
