"""attnlab: compose attention types, positional encodings and architectures; train and compare."""

__version__ = "0.1.0"
