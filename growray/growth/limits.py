"""SiteLimits: the caps a growth run puts on every site, as plug-ins' validate-time checks see them."""

from __future__ import annotations

from dataclasses import dataclass

from growray.checks import check_int

__all__ = ["SiteLimits"]


@dataclass(frozen=True)
class SiteLimits:
    """What growth may reach at a site; ``check_site`` of every growth plug-in receives it.

    ``growray validate`` fills it from the ``growth`` section before a run, so a plug-in
    can refuse a site that it could not handle later (e.g. ``north_weight`` needs the width
    to stay below the fan-in, ``north_act`` more buffered samples than units).

    Attributes:
        max_width: no site grows beyond this many units; None: no cap.
        max_depth: no more hidden blocks than this; None: no cap.
        buffer_size: recent training samples the growth hook hands to triggers and
            initializers (``TriggerContext.batch``).
    """

    max_width: int | None = None
    max_depth: int | None = None
    buffer_size: int = 256

    def __post_init__(self) -> None:
        check_int("max_width", self.max_width, minimum=1, optional=True)
        check_int("max_depth", self.max_depth, minimum=1, optional=True)
        check_int("buffer_size", self.buffer_size, minimum=1)
