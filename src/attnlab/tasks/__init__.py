"""LightningModules, one per task. A task never knows which architecture it trains."""

from attnlab.tasks.translation import TranslationTask

__all__ = ["TranslationTask"]
