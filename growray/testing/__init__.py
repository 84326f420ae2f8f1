"""Conformance suites that every registered plug-in must pass (import them from tests).

``growray.testing.initializers.InitializerConformance``,
``growray.testing.triggers.TriggerConformance`` and
``growray.testing.deepeners.DeepenerConformance`` are pytest classes: subclass one, define
the ``initializer`` / ``trigger_factory`` / ``deepener`` fixture, and pytest runs every check. They need
pytest, so they are not imported here.
"""

__all__: list[str] = []
