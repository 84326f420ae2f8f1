"""A trigger plug-in that crashes its trial once (a test fixture from outside growray).

``crash_once`` never asks for growth; at step ``at_step`` it raises, unless the file
``marker`` exists — it creates the file first, so the attempt Ray retries (from the last
checkpoint) runs through. It makes the crash path of a trial testable in a real sweep.
"""

from __future__ import annotations

from pathlib import Path

from growray.growth import TRIGGERS, GrowthRequest, Trigger, TriggerContext


@TRIGGERS.register("crash_once")
class CrashOnceTrigger(Trigger):
    """Raise RuntimeError once, at optimizer step ``at_step`` (module docstring)."""

    def __init__(self, marker: str = "", at_step: int = 1) -> None:
        if not marker:
            raise ValueError("marker must be a file path (created at the crash)")
        self.marker = Path(marker)
        self.at_step = at_step

    def check(self, ctx: TriggerContext) -> list[GrowthRequest]:
        if ctx.phase == "step" and ctx.step == self.at_step and not self.marker.exists():
            self.marker.write_text("crashed once\n")
            raise RuntimeError(f"crash_once: the planned crash at step {ctx.step}")
        return []
