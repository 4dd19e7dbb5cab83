"""OmegaConf resolvers the config tree uses (registered on import)."""

from omegaconf import OmegaConf


def _if_null(value, default):
    return default if value is None else value


if not OmegaConf.has_resolver("if_null"):
    OmegaConf.register_new_resolver("if_null", _if_null)


def _per_block(tokens, block_size):
    """Sequences a batch holds for ``tokens`` tokens a step (at least one): equal tokens per step
    whatever the context length."""
    return max(1, int(tokens) // int(block_size))


if not OmegaConf.has_resolver("per_block"):
    OmegaConf.register_new_resolver("per_block", _per_block)
