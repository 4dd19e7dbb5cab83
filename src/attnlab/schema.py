"""The shape of the files attnlab reads back (``metrics.json``, a checkpoint's hyperparameters),
declared as data and checked in one place, so a file of the wrong shape is refused with the first
key that is wrong (``metrics.val/bleu must be a number, got a string "high"``) instead of a
traceback wherever the value is first used.

A spec is

* a type name: ``"str"``, ``"int"``, ``"number"`` (NaN included), ``"bool"``, ``"scalar"`` (any
  JSON value but a list or mapping), ``"any"``;
* a tuple of the values allowed;
* a one-key dict: ``{"optional": spec}`` (or null), ``{"list": spec}``, ``{"map": spec}`` (string
  keys), ``{"pair": spec}`` (a list of two), ``{"either": [spec, ...]}``, ``{"record": {key:
  spec}}`` (the known keys typed, others allowed: ``validate``'s ``other`` may type them),
  ``{"strict": {key: spec}}`` (only those keys), ``{"row": [spec, ...]}`` (a list, by
  position).
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict

Spec = Any

_TYPES: Dict[str, Callable[[Any], bool]] = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "scalar": lambda v: v is None or isinstance(v, (str, int, float, bool)),
    "any": lambda v: True,
}
_NAMES = {"str": "a string", "int": "an integer", "number": "a number", "bool": "true or false", "scalar": "a plain value", "any": "anything"}


def kind_of(value: Any) -> str:
    """What a JSON value is, in words."""
    return "null" if value is None else {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(type(value), type(value).__name__)


def describe(spec: Spec) -> str:
    if isinstance(spec, str):
        return _NAMES[spec]
    if isinstance(spec, tuple):
        return " or ".join(json.dumps(v) for v in spec)
    ((form, inner),) = spec.items()
    if form == "optional":
        return f"{describe(inner)} or null"
    if form == "either":
        return " or ".join(describe(s) for s in inner)
    if form == "pair":
        return "a list of two"
    if form == "row":
        return f"a list of {len(inner)}"
    return "a list" if form == "list" else "a mapping"


class SchemaError(ValueError):
    """A value of the wrong shape; the message starts with where it is (``extras.bleu_by_length``)."""


def validate(value: Any, spec: Spec, where: str, other: Callable[[str, Any], Spec] | None = None) -> None:
    """Raises :class:`SchemaError` naming the first place whose value breaks ``spec``. ``other``
    gives the spec of a key a ``record`` does not name (None: anything)."""

    def wrong() -> SchemaError:
        return SchemaError(f"{where} must be {describe(spec)}, got {kind_of(value)} {json.dumps(value, default=str)[:60]}")

    if isinstance(spec, str):
        if not _TYPES[spec](value):
            raise wrong()
        return
    if isinstance(spec, tuple):
        if value not in spec:
            raise wrong()
        return
    ((form, inner),) = spec.items()
    if form == "optional":
        if value is not None:
            validate(value, inner, where, other)
    elif form == "either":
        for option in inner:
            try:
                return validate(value, option, where, other)
            except SchemaError:
                pass
        raise wrong()
    elif form in ("list", "pair", "row"):
        if not isinstance(value, list) or (form == "pair" and len(value) != 2) or (form == "row" and len(value) != len(inner)):
            raise wrong()
        for i, item in enumerate(value):
            validate(item, inner[i] if form == "row" else inner, f"{where}[{i}]", other)
    else:  # map, record, strict: a mapping with string keys
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise wrong()
        for key, item in value.items():
            if form == "map":
                validate(item, inner, f"{where}.{key}", other)
            elif key in inner:
                validate(item, inner[key], f"{where}.{key}", other)
            elif form == "strict":
                raise SchemaError(f"{where}.{key} is not a key attnlab writes there")
            elif other is not None:
                validate(item, other(key, item), f"{where}.{key}", other)
