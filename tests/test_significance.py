"""Intervals and paired tests (attnlab.stats) against known answers: synthetic data whose mean and
variance are known (coverage near 95 %, false positives near 5 %), sacrebleu's own command line,
Holm's procedure by hand, every measure against the library that defines the metric; then the
sweep report and attnlab-compare on run directories written here."""

from __future__ import annotations

import json
import random
import re
import subprocess

import numpy as np
import pytest

from attnlab.cli import compare as compare_cli
from attnlab.cli.report import main as report_main
from attnlab.run.results import RunResult
from attnlab.stats import examples, measures
from attnlab.stats.compare import sacrebleu_paired_p
from attnlab.stats.resampling import Difference, bootstrap_interval, holm, needed, paired_bootstrap, resample_counts, t_interval
from tests.helpers import BIN

ACCURACY = measures.measure("accuracy").score


def outcomes(rng, difficulty, shift=0.0):
    """(N, 2) accuracy statistics of one system: example i right with probability 0.4 + 0.5 d_i + shift."""
    right = rng.random(len(difficulty)) < np.clip(0.4 + 0.5 * difficulty + shift, 0, 1)
    return np.stack([right.astype(float), np.ones(len(difficulty))], axis=1)


def test_bootstrap_and_t_intervals_cover_the_true_value_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    draws, covered = 200, 0
    for i in range(draws):  # accuracy of a system whose true accuracy is 0.65
        stats = outcomes(rng, rng.random(300))
        found = bootstrap_interval(stats, ACCURACY, resamples=400, seed=i + 1)
        covered += found.low <= 0.65 <= found.high
    assert 0.90 <= covered / draws <= 0.99, covered / draws
    # per-seed scores ~ N(10, 2^2), three seeds: the t-interval's coverage is exact for normal data
    samples = rng.normal(10.0, 2.0, size=(4000, 3))
    hits = sum((lambda iv: iv.low <= 10.0 <= iv.high)(t_interval(s)) for s in samples)
    assert 0.935 <= hits / len(samples) <= 0.965, hits / len(samples)


def test_paired_bootstrap_rejects_about_5_percent_of_true_nulls_and_finds_a_real_difference():
    rng = np.random.default_rng(1)
    n, resamples = 200, 400
    draws, false_positives, found, sacrebleu_style = 600, 0, 0, 0
    for i in range(draws):
        difficulty = rng.random(n)  # shared by both systems: the pairing the test exploits
        a, b = outcomes(rng, difficulty), outcomes(rng, difficulty)
        result = paired_bootstrap([a], [b], ACCURACY, resamples=resamples, seed=i + 1)
        false_positives += result.p < 0.05
        # sacrebleu's paired-bs statistic on the same resamples: |d*| - mean|d*| beyond |d|
        counts = resample_counts(n, resamples, np.random.default_rng(i + 1))
        spread = np.abs(ACCURACY(counts @ a) - ACCURACY(counts @ b))
        observed = abs(ACCURACY(a.sum(0, keepdims=True)) - ACCURACY(b.sum(0, keepdims=True)))[0]
        sacrebleu_style += (np.sum(spread - spread.mean() > observed) + 1) / (resamples + 1) < 0.05
        if i < 50:  # a true difference of 15 points is found nearly every time (power about 0.95 here)
            better = outcomes(rng, difficulty, shift=0.15)
            found += paired_bootstrap([better], [b], ACCURACY, resamples=resamples, seed=i + 1).p < 0.05
    # 600 draws: the rate's standard error is 0.009 at 0.05; a one-sided p would give about 0.10
    assert 0.025 <= false_positives / draws <= 0.075, false_positives / draws
    assert found >= 45, found
    # why attnlab.stats.verdicts asks BLEU/chrF for the interval as well: sacrebleu's test is liberal
    assert sacrebleu_style / draws > 0.08, sacrebleu_style / draws


@pytest.mark.parametrize("seed_sd", [0.03, 0.10], ids=["sample-dominates", "seeds-dominate"])
def test_with_seeds_on_both_sides_the_test_stays_at_or_below_its_level(seed_sd):
    # drawing seed pairs in the bootstrap instead gave 0.10-0.15 here where seeds dominate
    rng = np.random.default_rng(2)
    draws, false_positives, found = 300, 0, 0
    for i in range(draws):
        difficulty = rng.random(200)
        a = [outcomes(rng, difficulty, rng.normal(0, seed_sd)) for _ in range(3)]  # seeds move the model
        b = [outcomes(rng, difficulty, rng.normal(0, seed_sd)) for _ in range(3)]
        false_positives += paired_bootstrap(a, b, ACCURACY, resamples=200, seed=i + 1).p < 0.05
        false_positives += paired_bootstrap(a, b, ACCURACY, resamples=200, seed=i + 1, paired_seeds=False).p < 0.05
        if i < 30 and seed_sd < 0.05:  # and still finds a 25-point difference (three seeds give t little to stand on)
            better = [outcomes(rng, difficulty, 0.25 + rng.normal(0, seed_sd)) for _ in range(3)]
            found += paired_bootstrap(better, b, ACCURACY, resamples=200, seed=i + 1).p < 0.05
    assert false_positives / (2 * draws) <= 0.07, false_positives / (2 * draws)
    assert seed_sd > 0.05 or found >= 27, found


def test_holm_matches_the_procedure_worked_by_hand():
    # sorted 0.01, 0.02, 0.03, 0.04 times 4, 3, 2, 1 -> 0.04, 0.06, 0.06 (kept monotone), 0.06
    assert holm([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0]) and holm([]) == []


def test_power_estimate_follows_the_normal_approximation():
    z2 = (1.959964 + 0.841621) ** 2
    one_run = Difference(estimate=1.0, low=-0.5, high=2.5, p=0.2, method="", se_examples=0.2, sd_seeds=None, examples=1000, seeds=1)
    assert needed(one_run) == {"examples": int(np.ceil(1000 * 0.04 * z2)), "seeds": None}  # N * (z se / d)^2
    # three seeds whose share of the variance is 0.1: examples must bring the sample's (0.01) below
    # 1/z2 - 0.1, seeds theirs (0.1 x 3 / seeds) below 1/z2 - 0.01
    seeded = Difference(estimate=1.0, low=-0.5, high=2.5, p=0.2, method="", se_examples=0.1, sd_seeds=0.5, examples=1000, seeds=3, seed_var=0.1)
    assert needed(seeded) == {"examples": int(np.ceil(1000 * 0.01 / (1 / z2 - 0.1))), "seeds": int(np.ceil(0.3 / (1 / z2 - 0.01)))}
    # where the seeds alone are too noisy, more examples cannot help
    assert needed(Difference(1.0, -1, 3, 0.3, "", 0.2, 1.0, 1000, 3, seed_var=0.5))["examples"] is None


def test_each_measure_equals_the_library_that_defines_its_metric():
    import sacrebleu
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(3)
    words = "one two three four five six seven eight".split()
    rows = []
    for i in range(60):
        ref = " ".join(rng.choice(words, size=rng.integers(2, 7)))
        hyp = ref if i % 3 else " ".join(rng.choice(words, size=4))
        rows.append({"hypothesis": hyp, "reference": ref})
    hyps, refs = [r["hypothesis"] for r in rows], [r["reference"] for r in rows]
    assert measures.score("bleu", rows) == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score, abs=1e-9)
    assert measures.score("chrf", rows) == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score, abs=1e-9)
    assert measures.score("exact_match", rows) == pytest.approx(100 * np.mean([h == r for h, r in zip(hyps, refs)]))
    labels, predicted = rng.integers(0, 5, 80), rng.integers(0, 6, 80)
    rows = [{"label": str(t), "prediction": str(p)} for t, p in zip(labels, predicted)]
    assert measures.score("macro_f1", rows) == pytest.approx(f1_score(labels, predicted, average="macro"), abs=1e-12)
    rows = [{"nll": 2.0, "total": 4, "bytes": 8}, {"nll": 6.0, "total": 4, "bytes": 4}]
    assert measures.score("mean_nll", rows) == 1.0 and measures.score("perplexity", rows) == pytest.approx(np.e)
    assert measures.score("bits_per_byte", rows) == pytest.approx(8.0 / np.log(2) / 12)


def test_bleu_p_value_equals_sacrebleu_paired_bs_on_the_same_files(tmp_path):
    rng = np.random.default_rng(4)
    words = "uno dos tres cuatro cinco seis siete ocho nueve diez".split()
    refs = [" ".join(rng.choice(words, size=rng.integers(3, 9))) for _ in range(80)]
    noisy = lambda keep: [r if rng.random() < keep else " ".join(rng.choice(words, size=5)) for r in refs]  # noqa: E731
    base, system = noisy(0.6), noisy(0.7)
    for name, lines in (("ref", refs), ("base", base), ("sys", system)):
        (tmp_path / f"{name}.txt").write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        [str(BIN / "sacrebleu"), "ref.txt", "-i", "base.txt", "sys.txt", "-m", "bleu", "chrf", "--paired-bs", "--paired-bs-n", "300", "-f", "text"],
        cwd=tmp_path, env={"SACREBLEU_SEED": "7", "PATH": str(BIN)}, capture_output=True, text=True, check=True,
    ).stdout
    printed = [float(p) for p in re.findall(r"p = ([0-9.]+)", out)]
    ours = [sacrebleu_paired_p(m, base, system, refs, resamples=300, seed=7) for m in ("bleu", "chrf")]
    # sacrebleu prints 4 decimals; p = (count + 1) / 301 moves in steps of 0.0033, so equal to 4
    # decimals is the same count: the same p exactly
    assert [round(p, 4) for p in ours] == printed and len(printed) == 2


# -- run directories, as train.py writes them -------------------------------------------------------
CLASSIFICATION_COLUMNS = [["val acc", "val/acc", True], ["test acc", "test/acc", True], ["test macro-F1", "test/macro_f1", True]]


def write_run(directory, attention, seed, right, texts=None):
    """A finished classification run whose test split is ``right`` (0/1 per example)."""
    texts = texts or [f"gloss {i}" for i in range(len(right))]
    rows = [
        {"id": i, "text": t, "label": "a" if i % 2 else "b", "prediction": ("a" if i % 2 else "b") if r else ("b" if i % 2 else "a"), "correct": int(r), "total": 1, "nll": 0.1 if r else 2.0}
        for i, (t, r) in enumerate(zip(texts, right))
    ]
    directory.mkdir(parents=True)
    (directory / ".hydra").mkdir()
    (directory / ".hydra" / "config.yaml").write_text("seed: 1\n")
    (directory / ".hydra" / "overrides.yaml").write_text(f"- attention={attention}\n- seed={seed}\n")
    examples.write(directory, "test", rows)
    described = examples.describe("test", rows, ("text", "label"), {"test/acc": "accuracy", "test/macro_f1": "macro_f1", "test/loss": "mean_nll"})
    metrics = {key: measures.score(name, rows) for key, name in described["measures"].items()}
    RunResult(
        status="ok", task="classification", choices={"arch": "transformer", "attention": attention, "pos_enc": "learned", "data": "wordnet"},
        seed=seed, overrides=[f"attention={attention}", f"seed={seed}"], metrics={"val/acc": metrics["test/acc"], **metrics},
        extras={"examples": {"test": described}}, report_columns=CLASSIFICATION_COLUMNS,
    ).write(directory)
    return directory


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Three configurations x three seeds on 400 shared examples: `strong` is 15 points better than
    `base`; `twin` is drawn exactly as `base` is."""
    root = tmp_path_factory.mktemp("sweep")
    rng = np.random.default_rng(5)
    difficulty = rng.random(400)
    num = 0
    for attention, shift in (("base", 0.0), ("twin", 0.0), ("strong", 0.15)):
        for seed in (1, 2, 3):
            write_run(root / str(num), attention, seed, outcomes(rng, difficulty, shift)[:, 0])
            num += 1
    return root


def test_report_marks_the_real_difference_and_not_the_twin(sweep, tmp_path):
    assert report_main([str(sweep), "--out", str(tmp_path), "--baseline", "transformer / base / learned", "--resamples", "500"]) == 0
    report = (tmp_path / "report.md").read_text()
    main_table = report.split("## Best")[0]
    assert re.search(r"\| transformer / strong / learned \| 1,2,3 \| – \| \d\.\d\d \[\d\.\d\d, \d\.\d\d\]", main_table)  # t-intervals
    section = report.split("## Is the difference real?")[1]
    assert "Baseline: **transformer / base / learned** (named with --baseline)" in section
    acc = section.split("### test acc")[1].split("###")[0]
    strong = next(line for line in acc.splitlines() if line.startswith("| transformer / strong"))
    twin = next(line for line in acc.splitlines() if line.startswith("| transformer / twin"))
    assert "**better**" in strong and "*not distinguishable*" in twin
    assert "seeds" in twin.split("|")[-2]  # how many seeds or examples would tell
    assert "paired t over 3 seed pairs" in acc  # seeds paired seed by seed
    assert "How to read this" in report


def test_the_default_baseline_is_the_best_configuration(sweep, tmp_path):
    assert report_main([str(sweep), "--out", str(tmp_path), "--resamples", "200"]) == 0
    assert "Baseline: **transformer / strong / learned** (the best on test acc" in (tmp_path / "report.md").read_text()


def test_compare_two_runs_and_a_run_against_a_sweep(sweep, capsys):
    assert compare_cli.main([str(sweep / "0"), str(sweep / "6"), "--metric", "test/acc", "--resamples", "300", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith("| test/acc"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    a, b = json.loads((sweep / "0" / "metrics.json").read_text()), json.loads((sweep / "6" / "metrics.json").read_text())
    assert float(cells[1]) == pytest.approx(a["metrics"]["test/acc"], abs=1e-3) and float(cells[2]) == pytest.approx(b["metrics"]["test/acc"], abs=1e-3)
    assert cells[5] == "**better**" and "test/macro_f1" not in out
    assert compare_cli.main([str(sweep / "0"), str(sweep), "--resamples", "200"]) == 2  # run 0 is in the sweep
    assert "on both sides" in capsys.readouterr().err


def test_compare_refuses_runs_on_other_examples_naming_the_line(sweep, tmp_path, capsys):
    rng = np.random.default_rng(6)
    texts = [f"gloss {i}" for i in range(400)]
    texts[16] = "another gloss"
    other = write_run(tmp_path / "other", "base", 1, rng.random(400) < 0.7, texts)
    assert compare_cli.main([str(sweep / "0"), str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not the same test examples" in err and "test_examples.jsonl:17" in err and "differ in text" in err


class _Rows:
    def __init__(self, rows):
        self.rows = rows

    def examples(self, split):
        return self


@pytest.mark.parametrize("name", ["bleu", "chrf"])
def test_the_sacrebleu_interval_is_sacrebleus_own(name):
    """The same resamples and 95 % interval as sacrebleu's corpus_score(n_bootstrap=...) (1e-9)."""
    import sacrebleu

    from attnlab.stats.compare import sacrebleu_interval, sacrebleu_seed

    rng = random.Random(0)
    words = "the a cat dog sat ran on in mat house red big".split()
    rows = [{"reference": " ".join(rng.choices(words, k=8)), "hypothesis": " ".join(rng.choices(words, k=8))} for _ in range(60)]
    ours = sacrebleu_interval(name, _Rows(rows), "test/" + name, 300, 7)
    metric = sacrebleu.BLEU() if name == "bleu" else sacrebleu.CHRF()
    with sacrebleu_seed(7):
        theirs = metric.corpus_score([r["hypothesis"] for r in rows], [[r["reference"] for r in rows]], n_bootstrap=300)
    assert ours.estimate == pytest.approx(theirs.score, abs=1e-9)
    assert (ours.low, ours.high) == pytest.approx((float(theirs._mean - theirs._ci), float(theirs._mean + theirs._ci)), abs=1e-4)  # sacrebleu's float32


def test_the_sacrebleu_interval_of_a_chrf_near_zero():
    """chrF resamples that score exactly 0 (a Python float) next to numpy float32 ones: sacrebleu's
    own estimate_ci fails ("don't know how to coerce float and float32"), as a tiny model's run did
    in the slow tier; the interval is still made."""
    from attnlab.stats.compare import sacrebleu_interval

    rows = [{"reference": "one two three four five", "hypothesis": "one two three four five" if i == 0 else "zzz"} for i in range(40)]
    bound = sacrebleu_interval("chrf", _Rows(rows), "test/chrf", 200, 1)
    # sacrebleu's interval is the resamples' mean ± half their 95 % span: it may reach below 0
    assert bound.low < bound.estimate < bound.high and np.isfinite([bound.low, bound.high]).all()
