"""Continual learning, pure torch: task sequences, the ``continual_mlp`` network (columns,
lateral adapters, task heads, unit birth tasks), the methods (finetune, Progressive Neural
Networks, DEN, EWC; registered in ``CL_METHODS``) and the accuracy-matrix metrics (average
accuracy, forgetting, GEM's BWT and FWT).

Nothing here logs or touches files: methods return :class:`ContinualEvent` s and the
``continual`` kind (``growray.kinds.continual``) records them.
"""

from .den import DENMethod
from .methods import CL_METHODS, ContinualEvent, ContinualMethod, EWCMethod, FinetuneMethod, ProgressiveMethod
from .metrics import AccuracyMatrix, hides_forgetting
from .net import ContinualMLP
from .tasks import SETTINGS, TaskSequence

__all__ = [
    "CL_METHODS",
    "SETTINGS",
    "AccuracyMatrix",
    "ContinualEvent",
    "ContinualMLP",
    "ContinualMethod",
    "DENMethod",
    "EWCMethod",
    "FinetuneMethod",
    "ProgressiveMethod",
    "TaskSequence",
    "hides_forgetting",
]
