"""Tasks: one LightningModule each, on the :class:`~attnlab.tasks.base.Task` base. A task never
knows which architecture it trains."""

from attnlab.tasks.base import Evaluation, Task
from attnlab.tasks.checkpoints import load_task, read_checkpoint
from attnlab.tasks.translation import TranslationTask
from attnlab.tasks.translator import Translator

__all__ = ["Evaluation", "Task", "TranslationTask", "Translator", "load_task", "read_checkpoint"]
