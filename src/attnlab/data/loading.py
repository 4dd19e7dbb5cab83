"""Build a datamodule from its spec and read its data, turning every way that can fail into an
error that says what to fix: unreadable data -> DataError, an invalid data setting -> ConfigError."""

from __future__ import annotations

from typing import Any, Mapping

from attnlab import components
from attnlab.errors import AttnlabError, ConfigError, DataError


def load_data(spec: Mapping[str, Any], stage: str = "fit", **overrides: Any):
    """The datamodule of a data spec (see :mod:`attnlab.components`), prepared and set up for
    ``stage``; ``overrides`` replace spec arguments (a checkpoint's vocabularies, the run's seed)."""
    try:
        datamodule = components.build(spec, "data", kind="datamodule")(**overrides)
        datamodule.prepare_data()
        datamodule.setup(stage)
    except AttnlabError:
        raise
    except (FileNotFoundError, ConnectionError, ImportError, KeyError) as exc:
        raise DataError(str(exc).strip("'\"")) from exc
    except (ValueError, TypeError) as exc:  # the data's own checks name their key (data.bpe..., data.max_tokens)
        raise ConfigError(str(exc)) from exc
    return datamodule
