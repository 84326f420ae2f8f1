"""Network growth, pure torch: triggers (when/where), initializers (how), deepeners
(inserting layers), surgery, optimizer-state migration and the strategy that ties them
together. Returns events; never logs."""

from growray.growth import north  # noqa: F401  (registers the NORTH* triggers and initializers)
from growray.growth.deepen import (
    DEEPENERS,
    Deepener,
    DepthChange,
    DropInDeepener,
    Net2DeeperDeepener,
    add_new_parameters,
    advance_dropin,
    dropin_gates,
)
from growray.growth.events import GrowthEvent
from growray.growth.firefly import FireflyInitializer
from growray.growth.gradmax import GradientTrigger, GradMaxInitializer
from growray.growth.initializers import (
    INITIALIZERS,
    Initializer,
    Net2WiderInitializer,
    RandomInitializer,
    WidthProposal,
)
from growray.growth.limits import SiteLimits
from growray.growth.nest import NeSTInitializer
from growray.growth.optim_state import OPTIMIZER_STATE_POLICIES, migrate_optimizer
from growray.growth.random_expansion import RandomExpansionInitializer
from growray.growth.strategy import GrowthStrategy
from growray.growth.surgery import ParamChange, widen
from growray.growth.triggers import (
    TRIGGERS,
    GrowthRequest,
    PlateauTrigger,
    ScheduleTrigger,
    Trigger,
    TriggerContext,
)

__all__ = [
    "DEEPENERS",
    "INITIALIZERS",
    "OPTIMIZER_STATE_POLICIES",
    "TRIGGERS",
    "Deepener",
    "DepthChange",
    "DropInDeepener",
    "FireflyInitializer",
    "GradMaxInitializer",
    "GradientTrigger",
    "GrowthEvent",
    "GrowthRequest",
    "GrowthStrategy",
    "Initializer",
    "NeSTInitializer",
    "Net2DeeperDeepener",
    "Net2WiderInitializer",
    "ParamChange",
    "PlateauTrigger",
    "RandomExpansionInitializer",
    "RandomInitializer",
    "ScheduleTrigger",
    "SiteLimits",
    "Trigger",
    "TriggerContext",
    "WidthProposal",
    "add_new_parameters",
    "advance_dropin",
    "dropin_gates",
    "migrate_optimizer",
    "widen",
]

# Registration happens on import: SENN's trigger and initializer.
from growray.growth import senn as _senn  # noqa: F401  isort: skip
