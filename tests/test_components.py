"""attnlab's registry of components: config -> spec -> component, and what a file may name."""

import functools

import lightning as L
import pytest
import torch

from attnlab import components
from attnlab.attention import Attention, MultiHeadAttention
from attnlab.data.loading import load_data
from attnlab.errors import ComponentError
from attnlab.models import TransformerSeq2Seq
from attnlab.tasks import load_task, read_checkpoint
from tests.helpers import ROOT

LEGACY = ROOT / "tests" / "fixtures" / "legacy_0.1_translation.ckpt"


def test_a_config_node_becomes_a_spec_that_names_components():
    node = {"_target_": "attnlab.attention.MultiHeadAttention", "_partial_": True, "num_heads": 2, "dropout": 0.0}
    spec = components.spec_from_config(node, "attention")
    assert spec == {"_component_": "attention/multihead", "num_heads": 2, "dropout": 0.0}
    factory = components.build(spec, "attention", kind="attention")
    assert isinstance(factory, functools.partial) and factory.func is MultiHeadAttention
    assert factory(d_model=8).num_heads == 2
    # any import path of a registered class names the same component
    alias = components.spec_from_config({**node, "_target_": "attnlab.attention.MultiHeadAttention"}, "attention")
    assert alias == spec


def test_nested_components_become_partials():
    data = {
        "_target_": "attnlab.data.TranslationDataModule",
        "name": "numbers",
        "corpus": {"_target_": "attnlab.data.numbers.generate", "_partial_": True, "train_size": 8},
        "bpe": {"vocab_size": 10},
    }
    spec = components.spec_from_config(data, "data")
    assert spec["_component_"] == "datamodule/translation" and spec["corpus"]["_component_"] == "corpus/numbers"
    built = components.build(spec, "data", kind="datamodule")
    assert built.keywords["corpus"].keywords == {"train_size": 8} and built.keywords["bpe"] == {"vocab_size": 10}


@pytest.mark.parametrize(
    "spec,message",
    [
        ({"_target_": "builtins.open", "file": "/tmp/x", "mode": "w"}, r"attention\._target_='builtins\.open' names code, not an attnlab component"),
        ({"_component_": "attention/evil"}, r"attention 'evil' is not an attnlab component; known: additive, differential, dot, linear, local, mla, multihead, none"),
        ({"_component_": "corpus/numbers"}, r"expected a attention component, got 'corpus/numbers'"),
        ({"_component_": "attention/multihead", "extra": {"_target_": "os.system", "command": "true"}}, r"attention\.extra\._target_='os\.system' names code"),
        ({"_component_": "attention/multihead", "_args_": ["x"]}, r"attention\._args_: reserved key refused"),
        ({"num_heads": 4}, r"expected a attention component spec"),
        ({"_component_": "attention/multihead", "num_heads": object()}, r"attention\.num_heads: a object value is not plain data"),
        ({"_component_": ["attention", "multihead"]}, r"is not KIND/NAME"),
    ],
)
def test_a_spec_from_a_file_can_only_name_registered_components(spec, message):
    with pytest.raises(ComponentError, match=message):
        components.build(spec, "attention", kind="attention")


def test_unregistered_targets_in_the_users_config_are_refused_with_the_fix():
    with pytest.raises(ComponentError, match=r"attention\._target_=collections\.OrderedDict is not a registered attnlab component.*@attnlab\.components\.register"):
        components.spec_from_config({"_target_": "collections.OrderedDict"}, "attention")


def test_register_a_component_of_your_own():
    @components.register("attention", "test_halved")
    class Halved(MultiHeadAttention):
        pass

    assert components.build({"_component_": "attention/test_halved"}, "attention", "attention").func is Halved
    assert components.name_of(Halved) == ("attention", "test_halved")
    assert "test_halved" in components.names("attention")
    with pytest.raises(ComponentError, match="attention/multihead is a built-in attnlab component"):
        components.register("attention", "multihead", Attention)
    with pytest.raises(ComponentError, match="unknown component kind"):
        components.register("optimizer", "sgd", torch.optim.SGD)


def test_a_checkpoint_of_attnlab_0_1_still_loads_and_evaluates_the_same(tmp_path):
    """tests/fixtures/legacy_0.1_translation.ckpt was written by attnlab 0.1 (commit 1177c97):
    its Hydra nodes are translated by name; its recorded test loss is reproduced."""
    payload = read_checkpoint(LEGACY)
    assert payload["hyper_parameters"]["arch"]["_component_"] == "arch/transformer"
    assert payload["hyper_parameters"]["data"]["corpus"]["_component_"] == "corpus/numbers"
    task = load_task(LEGACY)
    assert isinstance(task.model, TransformerSeq2Seq) and task.model.encoder.layers[0].self_attn.num_heads == 2
    data = {**task.hparams.data, "cache_dir": str(tmp_path)}
    datamodule = load_data(data, "test", **task.data_overrides())
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    (metrics,) = trainer.test(task, datamodule=datamodule, verbose=False)
    assert metrics["test/loss"] == pytest.approx(5.083305835723877, rel=1e-5)  # the 0.1 run's metrics.json
    assert metrics["test/chrf"] == pytest.approx(7.347825527191162, rel=1e-5)
