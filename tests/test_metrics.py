"""Translation metrics: torchmetrics objects whose scores equal sacrebleu's exactly."""

import random

import pytest
import sacrebleu
import torch

from attnlab.metrics import CorpusBLEU, CorpusChrF, ExactMatch, bleu_by_length, bleu_signature

WORDS = "the cat sat on a mat dog ran to house big red blue one two three".split()


def random_corpus(n, seed):
    rng = random.Random(seed)
    refs = [" ".join(rng.choices(WORDS, k=rng.randint(1, 12))) for _ in range(n)]
    hyps = [" ".join(w for w in r.split() if rng.random() > 0.3) + (" ." if rng.random() < 0.2 else "") for r in refs]
    return hyps, refs


@pytest.mark.parametrize("metric,reference", [(CorpusBLEU, sacrebleu.corpus_bleu), (CorpusChrF, sacrebleu.corpus_chrf)])
def test_corpus_metric_equals_sacrebleu_exactly_however_it_is_split(metric, reference):
    hyps, refs = random_corpus(200, seed=1)
    expected = reference(hyps, [refs]).score
    whole = metric()
    whole.update(hyps, refs)
    assert float(whole.compute()) == expected
    # batches of uneven size on two "ranks", merged as DDP's sum reduction would
    ranks = [metric(), metric()]
    for start in range(0, 200, 17):
        ranks[(start // 17) % 2].update(hyps[start : start + 17], refs[start : start + 17])
    ranks[0].merge_state(ranks[1])
    assert float(ranks[0].compute()) == expected
    ranks[0].reset()
    assert float(ranks[0].compute()) == 0.0  # nothing seen: 0, not an error


def test_exact_match_and_mismatched_lengths():
    exact = ExactMatch()
    exact.update(["the cat sat on the mat", "a b"], ["the cat sat on the mat", "a c"])
    exact.update(["x"], ["x"])
    assert float(exact.compute()) == pytest.approx(200 / 3)
    with pytest.raises(ValueError, match="1 hypotheses for 2 references"):
        CorpusBLEU().update(["a"], ["a", "b"])


def test_bleu_signature_and_by_length():
    assert bleu_signature().startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp")
    rows = bleu_by_length(["uno", "dos tres cuatro cinco seis siete"], ["one", "two three four five six seven"], ["one", "two three four five six seven"])
    assert [(r["bucket"], r["n"]) for r in rows] == [("1-5", 1), ("6-10", 1)]
    assert all(r["bleu"] == pytest.approx(100.0) for r in rows)
    assert isinstance(CorpusBLEU().stats, torch.Tensor)
