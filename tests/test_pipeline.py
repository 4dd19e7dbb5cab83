"""The Hydra + Lightning pipeline in-process: every combination, errors, reproducibility, checkpoints."""

import json

import pytest
import torch

from attnlab.checks import ConfigError
from attnlab.pipeline import train
from attnlab.tasks import TranslationTask
from tests.helpers import compose_config

COMBINATIONS = [
    [f"arch={arch}", f"attention={attn}", f"pos_enc={pos}"]
    for arch in ("rnn", "transformer")
    for attn in ("additive", "dot", "multihead")
    for pos in ("none", "learned", "sinusoidal")
] + [["arch=rnn", "attention=none", f"pos_enc={pos}"] for pos in ("none", "learned", "sinusoidal")]


@pytest.mark.parametrize("overrides", COMBINATIONS, ids=lambda o: "-".join(x.split("=")[1] for x in o))
def test_every_combination_composes_and_trains(overrides, tmp_path, data_dir):
    cfg = compose_config(tmp_path, overrides, data_dir)
    result = train(cfg)
    assert result["global_step"] == 3
    assert (result["arch"], result["attention"], result["pos_enc"]) == tuple(o.split("=")[1] for o in overrides)
    for key in ("val/loss", "val/bleu", "val/chrf", "val/exact_match", "test/loss", "test/bleu", "test/chrf"):
        assert key in result["metrics"] and result["metrics"][key] == result["metrics"][key]  # present, not NaN
    written = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert written["metrics"] == pytest.approx(result["metrics"])
    assert written["params"] > 0 and written["tokens_per_sec"] is not None and written["wall_time_s"] > 0
    assert len((tmp_path / "out" / "test_hypotheses.txt").read_text().splitlines()) == 24


@pytest.mark.parametrize("variant", ["attention.score=general", "attention.score=dot", "arch.cell=lstm", "arch.decoder=bahdanau", "arch.input_feeding=true"])
def test_rnn_variants_train(variant, tmp_path, data_dir):
    attention = "dot" if variant.startswith("attention.score") else "additive"
    cfg = compose_config(tmp_path, ["arch=rnn", f"attention={attention}", variant], data_dir)
    assert train(cfg)["global_step"] == 3


@pytest.mark.parametrize("variant", ["arch.norm=pre", "arch.tie_embeddings=false"])
def test_transformer_variants_train(variant, tmp_path, data_dir):
    assert train(compose_config(tmp_path, [variant], data_dir))["global_step"] == 3


@pytest.mark.parametrize("debug", ["fdr", "overfit"])
def test_debug_configs(debug, tmp_path, data_dir):
    overrides = [f"debug={debug}"] + (["trainer.max_epochs=2", "trainer.check_val_every_n_epoch=1"] if debug == "overfit" else [])
    cfg = compose_config(tmp_path, overrides, data_dir)
    result = train(cfg)
    assert result["global_step"] >= 1
    if debug == "overfit":
        assert cfg.trainer.overfit_batches == 1 and "early_stopping" not in cfg.callbacks or cfg.callbacks.early_stopping is None


def test_dates_data_trains(tmp_path, data_dir):
    result = train(compose_config(tmp_path, ["data=dates"], data_dir))
    assert result["data"] == "dates" and result["global_step"] == 3


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["arch=transformer", "attention=none"], r"attention=none cannot be used with arch=transformer"),
        (["arch.d_model=30", "attention.num_heads=4"], r"arch.d_model=30 is not divisible by attention.num_heads=4"),
        (["pos_enc=learned", "pos_enc.max_len=8"], r"pos_enc.max_len=8 is shorter than the longest sequence of data=numbers \(\d+ tokens\); raise pos_enc.max_len"),
        (["attention=dot", "attention.score=cosine"], r"attention.score must be one of dot, general, scaled"),
        (["arch=rnn", "arch.cell=transformer"], r"arch.cell must be one of gru, lstm"),
    ],
)
def test_invalid_settings_fail_before_training_naming_the_key(overrides, message, tmp_path, data_dir):
    cfg = compose_config(tmp_path, overrides, data_dir)
    with pytest.raises(ConfigError, match=message):
        train(cfg)
    assert not (tmp_path / "out" / "checkpoints").exists()
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_same_seed_same_metrics_and_seed_changes_model_not_data(tmp_path, data_dir):
    def run(name, seed):
        cfg = compose_config(tmp_path / name, [f"seed={seed}", "trainer.max_epochs=2"], data_dir)
        return train(cfg)["metrics"]

    first, second, other = run("a", 7), run("b", 7), run("c", 8)
    assert first == second
    assert first["val/loss"] != other["val/loss"]
    # the corpus depends on data.seed only: one cache file serves every model seed
    assert len(list(data_dir.glob("numbers-*.tsv"))) >= 1
    assert len({p.name for p in data_dir.glob("numbers-*.tsv")}) == len(list(data_dir.glob("numbers-*.tsv")))


def test_checkpoint_alone_translates_with_weights_only_loading(tmp_path, data_dir):
    cfg = compose_config(tmp_path, ["trainer.max_epochs=2"], data_dir)
    result = train(cfg)
    ckpt = result["best_checkpoint"]
    assert ckpt and ckpt.endswith(".ckpt")
    payload = torch.load(ckpt, map_location="cpu", weights_only=True)  # no pickled code
    hp = payload["hyper_parameters"]
    assert hp["src_vocab"][:4] == ["<pad>", "<unk>", "<bos>", "<eos>"] and len(hp["tgt_vocab"]) > 20
    task = TranslationTask.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True)
    out = task.translate(["veintiún mil", "ciento un millones"])
    assert len(out) == 2 and all(isinstance(s, str) for s in out)
    # the same weights produce the same hypotheses as the run's own test pass
    hyps = (tmp_path / "out" / "test_hypotheses.txt").read_text().splitlines()
    from attnlab.data.corpus_cache import read_pairs

    cache = next(p for p in data_dir.glob("numbers-*.tsv") if len(read_pairs(p)["test"]) == 24)
    sources = [s for s, _ in read_pairs(cache)["test"]]
    assert task.translate(sources) == hyps  # one batch of 24, as in the test pass


@pytest.mark.parametrize("logger", ["tensorboard", "csv"])
def test_tensorboard_and_csv_loggers_write_their_files(logger, tmp_path, data_dir):
    result = train(compose_config(tmp_path, [f"logger={logger}", "trainer.log_every_n_steps=1"], data_dir))
    out = tmp_path / "out"
    if logger == "tensorboard":
        events = list((out / "tensorboard").rglob("events.out.tfevents.*"))
        assert events and sum(e.stat().st_size for e in events) > 1000  # scalars, text, heatmap images
    else:
        from csv import DictReader

        rows = list(DictReader(next((out / "csv").rglob("metrics.csv")).open()))
        assert any(r.get("val/bleu") for r in rows) and any(r.get("train/loss") for r in rows)
        hparams = next((out / "csv").rglob("hparams.yaml")).read_text()
        assert "arch: transformer" in hparams
    assert result["metrics"]["val/bleu"] >= 0
