"""Tasks: one LightningModule each, on the :class:`~attnlab.tasks.base.Task` base. A task never
knows which architecture it trains.

The names below load on first use, so a tool that only reads a checkpoint (or fails to find one)
does not pay for importing Lightning and every task.
"""

from importlib import import_module

_WHERE = {
    "Evaluation": "attnlab.tasks.base",
    "Task": "attnlab.tasks.base",
    "ClassificationTask": "attnlab.tasks.classification",
    "MaskedLMTask": "attnlab.tasks.mlm",
    "LanguageModelTask": "attnlab.tasks.lm",
    "TranslationTask": "attnlab.tasks.translation",
    "Translator": "attnlab.tasks.translator",
    "load_task": "attnlab.tasks.checkpoints",
    "read_checkpoint": "attnlab.tasks.checkpoints",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
