"""The shapes of the hyperparameters several tasks store in their checkpoints (in
:mod:`attnlab.schema`'s language). Apart from the tasks, so that reading a checkpoint refuses a bad
one before Lightning is imported."""

from attnlab.schema import Spec

MODEL_KEYS = ("arch", "attention", "pos_enc")  # the component specs that rebuild the model
VOCAB: Spec = {"list": "str"}
SPECIALS: Spec = {"optional": {"map": "str"}}
TOKENIZER: Spec = {"either": ["str", {"strict": {"kind": "str", "model": {"optional": "str"}}}]}
TEXT_SCHEMA = {"vocab": VOCAB, "specials": SPECIALS, "tokenizer": TOKENIZER}  # a text task's vocabulary

# what a text task takes from its data (Task.data_fields)
TEXT_FIELDS = {
    "vocab": lambda dm: dm.vocab.tokens,
    "specials": lambda dm: dm.vocab.specials,
    "tokenizer": lambda dm: dm.tokenizer.spec,
}
