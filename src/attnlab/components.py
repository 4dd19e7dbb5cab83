"""attnlab's registry of components: for each kind, option name -> class or function.

The config tree a user composes names its parts by ``_target_``, as Hydra does. What attnlab writes
to a file and reads back (a checkpoint's hyperparameters) names them only by registered name, as a
*spec*::

    {"_component_": "attention/multihead", "num_heads": 4, "dropout": 0.1}

and is rebuilt by :func:`build`, which looks the name up here and never imports a path read from
the file. So a checkpoint is data: it can choose among attnlab's components and their arguments,
nothing else.

Kinds: ``arch``, ``attention``, ``pos_enc`` (the model's parts), ``datamodule``, ``corpus`` (data
sources) and ``task``. A component of your own joins with a decorator::

    @attnlab.components.register("attention", "mine")
    class MyAttention(attnlab.attention.Attention): ...
"""

from __future__ import annotations

import functools
import importlib
from typing import Any, Dict, Mapping, Optional, Tuple

from attnlab.errors import ComponentError

KINDS = ("arch", "attention", "pos_enc", "datamodule", "corpus", "task")
KEY = "_component_"

# the built-in components, as "module:attribute" strings: looking a name up imports only its module
_BUILTIN: Dict[str, Dict[str, str]] = {
    "arch": {
        "transformer": "attnlab.models.transformer:TransformerSeq2Seq",
        "rnn": "attnlab.models.rnn:RNNSeq2Seq",
    },
    "attention": {
        "multihead": "attnlab.attention:MultiHeadAttention",
        "dot": "attnlab.attention:DotProductAttention",
        "additive": "attnlab.attention:AdditiveAttention",
        "none": "attnlab.attention:NoAttention",
        "local": "attnlab.attention:LocalAttention",
        "linear": "attnlab.attention:LinearAttention",
        "mla": "attnlab.attention:LatentAttention",
        "differential": "attnlab.attention:DifferentialAttention",
    },
    "pos_enc": {
        "none": "attnlab.positional:NoPositionalEncoding",
        "learned": "attnlab.positional:LearnedPositionalEncoding",
        "sinusoidal": "attnlab.positional:SinusoidalPositionalEncoding",
        "rotary": "attnlab.positional:RotaryPositionalEncoding",
        "alibi": "attnlab.positional:ALiBiPositionalEncoding",
        "t5": "attnlab.positional:T5RelativePositionalBias",
    },
    "datamodule": {
        "translation": "attnlab.data.datamodule:TranslationDataModule",
        "text": "attnlab.data.text:TextDataModule",
        "stream": "attnlab.data.stream:StreamDataModule",
    },
    "corpus": {
        "numbers": "attnlab.data.numbers:generate",
        "dates": "attnlab.data.dates:generate",
        "bible": "attnlab.data.bible:generate",
        "parallel_files": "attnlab.data.parallel_files:read",
        "hf": "attnlab.data.hf:load",
        "wordnet": "attnlab.data.wordnet:generate",
        "bible_genre": "attnlab.data.bible_genre:generate",
        "text_files": "attnlab.data.text_files:read",
        "hf_text": "attnlab.data.hf:load_text",
        "shakespeare": "attnlab.data.shakespeare:generate",
        "bible_text": "attnlab.data.bible_text:generate",
        "text_stream": "attnlab.data.text_stream:read",
    },
    "task": {
        "translation": "attnlab.tasks.translation:TranslationTask",
        "classification": "attnlab.tasks.classification:ClassificationTask",
        "mlm": "attnlab.tasks.mlm:MaskedLMTask",
        "lm": "attnlab.tasks.lm:LanguageModelTask",
    },
}
_REGISTERED: Dict[str, Dict[str, Any]] = {kind: {} for kind in KINDS}

# checkpoints of attnlab 0.1 stored Hydra nodes: their `_target_` strings, matched as plain text
# (never imported), map onto today's names
_LEGACY_TARGETS = {
    "attnlab.models.TransformerSeq2Seq": "arch/transformer",
    "attnlab.models.RNNSeq2Seq": "arch/rnn",
    "attnlab.attention.MultiHeadAttention": "attention/multihead",
    "attnlab.attention.DotProductAttention": "attention/dot",
    "attnlab.attention.AdditiveAttention": "attention/additive",
    "attnlab.attention.NoAttention": "attention/none",
    "attnlab.positional.NoPositionalEncoding": "pos_enc/none",
    "attnlab.positional.LearnedPositionalEncoding": "pos_enc/learned",
    "attnlab.positional.SinusoidalPositionalEncoding": "pos_enc/sinusoidal",
    "attnlab.data.TranslationDataModule": "datamodule/translation",
    "attnlab.data.numbers.generate": "corpus/numbers",
    "attnlab.data.dates.generate": "corpus/dates",
    "attnlab.data.bible.generate": "corpus/bible",
    "attnlab.data.parallel_files.read": "corpus/parallel_files",
    "attnlab.data.hf.load": "corpus/hf",
}
_HYDRA_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_")


def register(kind: str, name: str, obj: Any = None):
    """Register ``obj`` as option ``name`` of ``kind``; without ``obj``, a decorator."""
    if kind not in KINDS:
        raise ComponentError(f"unknown component kind {kind!r}; kinds are {', '.join(KINDS)}")

    def add(target: Any) -> Any:
        known = _BUILTIN[kind].get(name)
        if known is not None and _import(known) is not target:
            raise ComponentError(f"{kind}/{name} is a built-in attnlab component; register yours under another name")
        _REGISTERED[kind][name] = target
        return target

    return add if obj is None else add(obj)


def _import(path: str) -> Any:
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


def names(kind: str) -> Tuple[str, ...]:
    return tuple(sorted({**_BUILTIN[kind], **_REGISTERED[kind]}))


def lookup(kind: str, name: str, where: str = "") -> Any:
    """The registered object of ``kind`` called ``name``; anything else is refused."""
    if kind not in KINDS:
        raise ComponentError(f"{where or 'component'}: unknown component kind {kind!r}")
    if not isinstance(name, str):
        raise ComponentError(f"{where or kind}: a {kind} name must be a string, got {type(name).__name__}")
    if name in _REGISTERED[kind]:
        return _REGISTERED[kind][name]
    if name in _BUILTIN[kind]:
        return _import(_BUILTIN[kind][name])
    raise ComponentError(f"{where or kind}: {kind} {name!r} is not an attnlab component; known: {', '.join(names(kind))}")


def name_of(obj: Any) -> Optional[Tuple[str, str]]:
    """(kind, name) under which ``obj`` is registered, or None."""
    for kind in KINDS:
        for name, target in _REGISTERED[kind].items():
            if target is obj:
                return kind, name
        for name, path in _BUILTIN[kind].items():
            if _import(path) is obj:
                return kind, name
    return None


# -- from the user's composed config -------------------------------------------------------------
def spec_from_config(node: Any, where: str) -> Any:
    """A composed config node (plain containers, ``_target_`` nodes) -> a spec that names
    components by registered name. The targets come from the user's own config, so they are
    imported here (as Hydra would); a target attnlab does not know is refused, because a
    checkpoint could not name it."""
    if isinstance(node, Mapping):
        if "_target_" not in node:
            return {k: spec_from_config(v, f"{where}.{k}") for k, v in node.items()}
        target = node["_target_"]
        try:
            obj = _import(target.rsplit(".", 1)[0] + ":" + target.rsplit(".", 1)[1]) if "." in target else None
        except (ImportError, AttributeError) as exc:
            raise ComponentError(f"{where}._target_={target} cannot be imported: {exc}") from None
        found = name_of(obj) if obj is not None else None
        if found is None:
            raise ComponentError(
                f"{where}._target_={target} is not a registered attnlab component, so a checkpoint could "
                f"not name it: decorate it with @attnlab.components.register(KIND, NAME) (kinds: {', '.join(KINDS)})"
            )
        args = {k: spec_from_config(v, f"{where}.{k}") for k, v in node.items() if k not in _HYDRA_KEYS}
        return {KEY: f"{found[0]}/{found[1]}", **args}
    if isinstance(node, (list, tuple)):
        return [spec_from_config(v, f"{where}[{i}]") for i, v in enumerate(node)]
    return node


# -- from a file ----------------------------------------------------------------------------------
def check_spec(node: Any, where: str, kind: Optional[str] = None) -> Any:
    """Validate a spec read from a file and return it in today's form.

    Components are named only by registered name (``kind`` fixes which kind the top node must
    be); keys such as ``_target_`` are refused, except the exact ``_target_`` strings that
    attnlab 0.1 wrote for its own components, which are translated by name.
    """
    if isinstance(node, Mapping):
        node = dict(node)
        if "_target_" in node:
            target = node.pop("_target_")
            if not isinstance(target, str) or target not in _LEGACY_TARGETS:
                raise ComponentError(f"{where}._target_={target!r} names code, not an attnlab component; refused")
            node.pop("_partial_", None)
            node = {KEY: _LEGACY_TARGETS[target], **node}
        for key in node:
            if not isinstance(key, str):
                raise ComponentError(f"{where}: key {key!r} is not a string")
            if key != KEY and key.startswith("_") and key.endswith("_"):
                raise ComponentError(f"{where}.{key}: reserved key refused")
        checked = {k: check_spec(v, f"{where}.{k}") for k, v in node.items() if k != KEY}
        if KEY in node:
            component = node[KEY]
            if not isinstance(component, str) or component.count("/") != 1:
                raise ComponentError(f"{where}.{KEY}={component!r} is not KIND/NAME")
            got_kind, name = component.split("/")
            if kind is not None and got_kind != kind:
                raise ComponentError(f"{where}: expected a {kind} component, got {component!r}")
            lookup(got_kind, name, where)
            return {KEY: component, **checked}
        if kind is not None:
            raise ComponentError(f"{where}: expected a {kind} component spec ({{{KEY!r}: '{kind}/NAME', ...}})")
        return checked
    if isinstance(node, (list, tuple)):
        return [check_spec(v, f"{where}[{i}]") for i, v in enumerate(node)]
    if node is None or isinstance(node, (str, int, float, bool)):
        return node
    raise ComponentError(f"{where}: a {type(node).__name__} value is not plain data")


def component_name(spec: Mapping[str, Any]) -> str:
    """``attention/multihead`` -> ``multihead``."""
    return spec[KEY].split("/", 1)[1]


def build(spec: Any, where: str, kind: Optional[str] = None) -> Any:
    """A checked spec -> ``functools.partial`` of the registered component with its arguments
    (nested components become partials too: a factory the parent calls with what it knows)."""
    spec = check_spec(spec, where, kind)
    return _build(spec)


def _build(node: Any) -> Any:
    if isinstance(node, dict):
        args = {k: _build(v) for k, v in node.items() if k != KEY}
        if KEY not in node:
            return args
        component_kind, name = node[KEY].split("/")
        return functools.partial(lookup(component_kind, name), **args)
    if isinstance(node, list):
        return [_build(v) for v in node]
    return node

