"""The errors a user can cause: each prints as one line that says what to change, never a traceback.

Every layer raises them (data, tasks, the run's plumbing, the command-line tools), so they live
here, below all of them; the entry points catch :class:`AttnlabError` and print its message.
"""

from __future__ import annotations


class AttnlabError(Exception):
    """A mistake in the user's input or set-up; the message names the key, file or line."""


class ConfigError(AttnlabError, ValueError):
    """An impossible or invalid setting; the message names the config key."""


class DataError(AttnlabError, ValueError):
    """Data that cannot be read: a missing corpus or file, a malformed line, an unreachable hub.
    The message names the file and line, or what to install or set."""


class CheckpointError(AttnlabError, ValueError):
    """A missing, unreadable, foreign or unsafe checkpoint; the message names the file (and key)."""


class ComponentError(AttnlabError, ValueError):
    """A component that attnlab's registry does not know, or a malformed component spec."""
