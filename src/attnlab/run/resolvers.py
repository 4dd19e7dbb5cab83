"""OmegaConf resolvers the config tree uses (registered on import)."""

from omegaconf import OmegaConf


def _if_null(value, default):
    return default if value is None else value


if not OmegaConf.has_resolver("if_null"):
    OmegaConf.register_new_resolver("if_null", _if_null)
