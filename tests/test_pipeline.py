"""The Hydra + Lightning pipeline in-process: every combination, errors, reproducibility, checkpoints."""

import math

import pytest
import torch

from attnlab.data.corpus_cache import read_pairs
from attnlab.errors import ConfigError
from attnlab.run.pipeline import train
from attnlab.tasks import TranslationTask, load_task
from tests.helpers import TINY, assert_examples_reproduce_metrics, compose_config, read_metrics

COMBINATIONS = [
    [f"arch={arch}", f"attention={attn}", f"pos_enc={pos}"]
    for arch in ("rnn", "transformer")
    for attn in ("additive", "dot", "multihead")
    for pos in ("none", "learned", "sinusoidal")
] + [["arch=rnn", "attention=none", f"pos_enc={pos}"] for pos in ("none", "learned", "sinusoidal")]


def cached_split(data_dir, name, split, size):
    """The sources of a split of the corpus cache that a tiny run generated."""
    cache = next(p for p in data_dir.glob(f"{name}-*.tsv") if len(read_pairs(p)[split]) == size)
    return read_pairs(cache)[split]


@pytest.mark.parametrize("overrides", COMBINATIONS, ids=lambda o: "-".join(x.split("=")[1] for x in o))
def test_every_combination_composes_and_trains(overrides, tmp_path, data_dir):
    cfg = compose_config(tmp_path, overrides, data_dir)
    result = train(cfg)
    assert result.global_step == 3
    assert (result.choices["arch"], result.choices["attention"], result.choices["pos_enc"]) == tuple(o.split("=")[1] for o in overrides)
    for key in ("val/loss", "val/bleu", "val/chrf", "val/exact_match", "test/loss", "test/bleu", "test/chrf"):
        assert math.isfinite(result.metrics[key]), key
    assert 0.0 <= result.metrics["test/bleu"] <= 100.0 and result.metrics["val/loss"] > 0
    written = read_metrics(tmp_path / "out")
    assert written["metrics"] == pytest.approx(result.metrics)
    assert written["params"] > 0 and written["tokens_per_sec"] > 0 and written["wall_time_s"] > 0
    assert written["report_columns"][0] == ["val BLEU", "val/bleu", True]
    assert len((tmp_path / "out" / "test_hypotheses.txt").read_text().splitlines()) == 24
    assert len((tmp_path / "out" / "val_hypotheses.txt").read_text().splitlines()) == 24
    assert_examples_reproduce_metrics(result)  # BLEU, chrF, exact match, loss again from test_examples.jsonl


# each variant, and what the trained model must then be: a setting that is ignored fails here
RNN_VARIANTS = {
    "attention.score=general": lambda m: m.decoder.attention.score == "general" and hasattr(m.decoder.attention, "key_proj"),
    "attention.score=dot": lambda m: m.decoder.attention.score == "dot",
    "arch.cell=lstm": lambda m: isinstance(m.encoder.rnn, torch.nn.LSTM) and isinstance(m.decoder.rnn, torch.nn.LSTM),
    "arch.decoder=bahdanau": lambda m: type(m.decoder).__name__ == "BahdanauDecoder",
    "arch.input_feeding=true": lambda m: m.decoder.input_feeding and m.decoder.rnn.input_size == m.decoder.embed.embedding_dim + m.decoder.d_model,
}
TRANSFORMER_VARIANTS = {
    "arch.norm=pre": lambda m: isinstance(m.final_norm, torch.nn.LayerNorm) and all(layer.ff_block.pre_norm for layer in m.encoder.layers),
    "arch.tie_embeddings=false": lambda m: m.generator.weight is not m.embed.weight,
}


@pytest.mark.parametrize("variant", RNN_VARIANTS)
def test_rnn_variants_train(variant, tmp_path, data_dir):
    attention = "dot" if variant.startswith("attention.score") else "additive"
    cfg = compose_config(tmp_path, ["arch=rnn", f"attention={attention}", variant], data_dir)
    result = train(cfg)
    assert result.global_step == 3
    assert RNN_VARIANTS[variant](load_task(result.checkpoint).model)


@pytest.mark.parametrize("variant", TRANSFORMER_VARIANTS)
def test_transformer_variants_train(variant, tmp_path, data_dir):
    result = train(compose_config(tmp_path, [variant], data_dir))
    assert result.global_step == 3
    assert TRANSFORMER_VARIANTS[variant](load_task(result.checkpoint).model)


def test_max_time_stops_inside_the_first_epoch(tmp_path, data_dir):
    # a time budget shorter than one epoch must end the run (min_epochs would keep it going)
    cfg = compose_config(tmp_path, ["data.corpus.train_size=8000", "data.batch_size=8", "++trainer.max_time=00:00:00:01"], data_dir)
    result = train(cfg)
    assert 1 <= result.global_step < 1000  # an epoch is 1,000 steps
    assert math.isfinite(result.metrics["test/loss"])


def test_any_torch_optimizer_is_one_override_away(tmp_path, data_dir):
    cfg = compose_config(tmp_path, ["task.optimizer._target_=torch.optim.SGD", "~task.optimizer.betas", "~task.optimizer.weight_decay", "task.optimizer.lr=0.5"], data_dir)
    result = train(cfg)
    payload = torch.load(result.checkpoint, map_location="cpu", weights_only=True)
    (state,) = payload["optimizer_states"]
    group = state["param_groups"][0]
    assert "nesterov" in group and "betas" not in group  # SGD's settings, not AdamW's


def test_the_numbers_recipe_applies_to_its_pair_only_and_gives_way_to_experiments_and_overrides(tmp_path):
    def recipe(overrides):
        cfg = compose_config(tmp_path, overrides, tiny=False)
        return cfg.trainer.max_epochs, cfg.task.label_smoothing, cfg.task.optimizer.lr, cfg.task.scheduler.name

    assert recipe([]) == (3, 0.0, 2e-3, "cosine")  # data=numbers task=translation: recipe/numbers_translation.yaml
    assert recipe(["arch=rnn", "attention=additive"]) == (3, 0.0, 2e-3, "cosine")  # any model of the pair
    assert recipe(["data=dates"]) == (4, 0.1, 1e-3, "inverse_sqrt")  # no recipe for dates: the task's defaults
    assert recipe(["experiment=ablation"]) == (3, 0.1, 1e-3, "inverse_sqrt")  # the experiment's own training
    assert recipe(["trainer.max_epochs=5", "task.label_smoothing=0.2"])[:2] == (5, 0.2)  # the command line last


def test_debug_fdr_runs_one_small_batch_of_every_loop(tmp_path, data_dir):
    corpus = [o for o in TINY if o.startswith("data.corpus")]  # the debug config's own batch sizes
    result = train(compose_config(tmp_path, ["debug=fdr", "logger=none", *corpus], data_dir, tiny=False))
    assert result.global_step == 1
    # one batch of 4 sentences in validation and in the test
    assert len((tmp_path / "out" / "test_hypotheses.txt").read_text().splitlines()) == 4
    assert "val/bleu" in result.metrics and "test/bleu" in result.metrics


def test_debug_overfit_memorises_one_batch(tmp_path, data_dir):
    """The overfit config must drive a (tiny) model to reproduce its one training batch exactly."""
    overrides = [
        "debug=overfit", "data.batch_size=8", "trainer.max_epochs=150", "trainer.check_val_every_n_epoch=150",
        "task.optimizer.lr=3e-3", "arch.dropout=0.0", "attention.dropout=0.0", "task.max_len_b=10",
    ]
    cfg = compose_config(tmp_path, overrides, data_dir)
    assert cfg.trainer.overfit_batches == 1 and cfg.callbacks.get("early_stopping") is None
    result = train(cfg)
    assert result.global_step == 150
    batch = cached_split(data_dir, "numbers", "train", 96)[:8]  # unshuffled: the first batch
    translator = load_task(tmp_path / "out" / "checkpoints" / "last.ckpt").translator
    assert translator.translate([s for s, _ in batch]) == [t for _, t in batch]


@pytest.mark.slow  # ~9 s: moved to the slow tier to keep the fast tier under 10 minutes on 2 cores (issue 30's tests came in)
def test_dates_data_trains(tmp_path, data_dir):
    import re

    result = train(compose_config(tmp_path, ["data=dates"], data_dir))
    assert result.choices["data"] == "dates" and result.global_step == 3
    # the run read the dates corpus (targets are ISO dates), not the default numbers
    targets = [t for _, t in cached_split(data_dir, "dates", "test", 24)]
    assert len(targets) == 24 and all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", t) for t in targets)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["arch=transformer", "attention=none"], r"attention=none cannot be used with arch=transformer"),
        (["arch.d_model=30", "attention.num_heads=4"], r"arch.d_model=30 is not divisible by attention.num_heads=4"),
        (["pos_enc=learned", "pos_enc.max_len=8"], r"pos_enc.max_len=8 is shorter than the longest sequence of data=numbers \(\d+ tokens\); raise pos_enc.max_len"),
        (["attention=dot", "attention.score=cosine"], r"attention.score must be one of dot, general, scaled"),
        (["arch=rnn", "arch.cell=transformer"], r"arch.cell must be one of gru, lstm"),
        (["attention._target_=collections.OrderedDict"], r"attention._target_=collections.OrderedDict is not a registered attnlab component"),
    ],
)
def test_invalid_settings_fail_before_training_naming_the_key(overrides, message, tmp_path, data_dir):
    cfg = compose_config(tmp_path, overrides, data_dir)
    with pytest.raises(ConfigError, match=message):
        train(cfg)
    assert not (tmp_path / "out" / "checkpoints").exists()
    assert not (tmp_path / "out" / "metrics.json").exists()


@pytest.mark.slow  # three trainings, ~10 s: moved to the slow tier to keep the fast tier under 10 minutes on 2 cores (issue 30's tests came in)
def test_same_seed_same_metrics_and_seed_changes_model_not_data(tmp_path, data_dir):
    def run(name, seed):
        cfg = compose_config(tmp_path / name, [f"seed={seed}"], data_dir)
        return train(cfg).metrics

    first = run("a", 7)
    corpora = sorted(p.name for p in data_dir.glob("numbers-*.tsv"))
    second, other = run("b", 7), run("c", 8)
    assert first == second
    assert first["val/loss"] != other["val/loss"]
    # the corpus depends on data.seed only: the run with another model seed made no new cache file
    assert sorted(p.name for p in data_dir.glob("numbers-*.tsv")) == corpora


def test_checkpoint_alone_translates_with_weights_only_loading(tmp_path, data_dir):
    cfg = compose_config(tmp_path, ["trainer.max_epochs=2"], data_dir)
    result = train(cfg)
    assert result.checkpoint and result.checkpoint.endswith(".ckpt")
    payload = torch.load(result.checkpoint, map_location="cpu", weights_only=True)  # no pickled code
    hp = payload["hyper_parameters"]
    assert hp["src_vocab"][:4] == ["<pad>", "<unk>", "<bos>", "<eos>"] and len(hp["tgt_vocab"]) > 20
    assert hp["attention"] == {"_component_": "attention/multihead", "num_heads": 4, "num_kv_heads": None, "dropout": 0.1}  # names, not code
    assert hp["data"]["corpus"]["_component_"] == "corpus/numbers"
    # Lightning's own loader works too: the hyperparameters rebuild the model through the registry
    task = TranslationTask.load_from_checkpoint(result.checkpoint, map_location="cpu", weights_only=True)
    out = task.translator.translate(["veintiún mil", "ciento un millones"])
    assert len(out) == 2 and all(isinstance(s, str) for s in out)
    # the same weights produce the same hypotheses as the run's own test pass
    hyps = (tmp_path / "out" / "test_hypotheses.txt").read_text().splitlines()
    sources = [s for s, _ in cached_split(data_dir, "numbers", "test", 24)]
    assert task.translator.translate(sources) == hyps  # one batch of 24, as in the test pass


@pytest.mark.parametrize("logger", ["tensorboard", pytest.param("csv", marks=pytest.mark.slow)])  # csv: the slow tier (fast tier under 10 minutes)
def test_tensorboard_and_csv_loggers_write_their_files(logger, tmp_path, data_dir):
    result = train(compose_config(tmp_path, [f"logger={logger}", "trainer.log_every_n_steps=1"], data_dir))
    out = tmp_path / "out"
    if logger == "tensorboard":
        events = list((out / "tensorboard").rglob("events.out.tfevents.*"))
        assert events and sum(e.stat().st_size for e in events) > 1000  # scalars, text, heatmap images
    else:
        from csv import DictReader

        rows = list(DictReader(next((out / "csv").rglob("metrics.csv")).open()))
        logged = [float(r["val/bleu"]) for r in rows if r.get("val/bleu")]
        assert logged and logged[-1] == pytest.approx(result.metrics["val/bleu"], abs=1e-3)
        assert any(r.get("train/loss") for r in rows)
        hparams = next((out / "csv").rglob("hparams.yaml")).read_text()
        assert "arch: transformer" in hparams


def test_a_run_shorter_than_one_validation_interval_validates_once_at_its_end(tmp_path, data_dir):
    """One step of a three-step epoch: early stopping (strict in Lightning) found no val metric at
    the epoch's end and stopped the run with a traceback; now the run validates its final weights."""
    cfg = compose_config(tmp_path, ["trainer.max_steps=1", "trainer.max_epochs=-1"], data_dir)
    assert cfg.callbacks.early_stopping is not None  # the callback that used to crash is on
    result = train(cfg)
    assert result.status == "ok" and result.global_step == 1
    assert math.isfinite(result.metrics["val/loss"]) and math.isfinite(result.metrics["test/loss"])
    assert read_metrics(tmp_path / "out")["metrics"]["val/loss"] == pytest.approx(result.metrics["val/loss"])


@pytest.mark.parametrize(
    "task, data, kind",
    [("translation", "numbers", "TranslationDataModule"), ("classification", "wordnet", "TextDataModule"), ("mlm", "wordnet", "TextDataModule"), ("lm", "shakespeare", "StreamDataModule")],
)
def test_each_task_trains_on_its_own_data_when_none_is_chosen(task, data, kind, tmp_path):
    cfg = compose_config(tmp_path, [f"task={task}"], tiny=False)
    assert cfg.choices.data == data and cfg.data._target_.endswith(kind)


def test_a_chosen_data_wins_over_the_tasks_own_and_a_wrong_pair_is_still_refused(tmp_path):
    from attnlab.run.pipeline import check_data_kind, task_class_of
    from attnlab.run.checks import config_spec

    assert compose_config(tmp_path, ["task=lm", "data=bible_text"], tiny=False).choices.data == "bible_text"
    assert compose_config(tmp_path, ["experiment=pretraining"], tiny=False).choices.data == "wordnet"
    cfg = compose_config(tmp_path, ["task=mlm", "data=numbers"], tiny=False)
    assert cfg.choices.data == "numbers"
    with pytest.raises(ConfigError, match="data=numbers gives translation data, but task=mlm reads text data"):
        check_data_kind(task_class_of(cfg), config_spec(cfg.data, "data"), cfg)


@pytest.mark.parametrize("overrides", [[], ["arch=rnn", "attention=additive"]], ids=["transformer", "rnn"])
def test_weight_decay_falls_on_matrices_only_unless_asked_for_all(overrides, tmp_path, data_dir):
    from attnlab.run.pipeline import data_and_task

    cfg = compose_config(tmp_path, overrides, data_dir)
    _, task = data_and_task(cfg)
    optimizer = task.optimizer_factory(task.optimizer_parameters())
    decay_of = {id(p): group["weight_decay"] for group in optimizer.param_groups for p in group["params"]}
    assert len(decay_of) == sum(1 for _ in task.parameters())  # every parameter, once
    for name, p in task.named_parameters():
        expected = cfg.task.optimizer.weight_decay if p.ndim >= 2 else 0.0
        assert decay_of[id(p)] == expected, name
    assert any(p.ndim < 2 for p in task.parameters()) and cfg.task.optimizer.weight_decay > 0  # the test means something

    with_all = compose_config(tmp_path / "all", [*overrides, "task.decay=all"], data_dir)
    _, task = data_and_task(with_all)
    groups = task.optimizer_factory(task.optimizer_parameters()).param_groups
    assert [g["weight_decay"] for g in groups] == [with_all.task.optimizer.weight_decay]
