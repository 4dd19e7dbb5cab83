import math

import pytest

from attnlab.metrics import translation_scores
from attnlab.tasks.schedules import lr_multiplier


def test_warmup_then_inverse_sqrt():
    f = lr_multiplier("inverse_sqrt", warmup_steps=100, total_steps=1000)
    assert f(0) == pytest.approx(0.01) and f(99) == pytest.approx(1.0)
    assert f(399) == pytest.approx(math.sqrt(100 / 400))


def test_warmup_then_cosine_to_min_ratio():
    f = lr_multiplier("cosine", warmup_steps=10, total_steps=110, min_ratio=0.1)
    assert f(10) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.55)
    assert f(110) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)


def test_unknown_schedule_names_the_key():
    with pytest.raises(ValueError, match="task.scheduler.name"):
        lr_multiplier("linear", 10, 100)


def test_translation_scores():
    scores = translation_scores(["the cat sat on the mat", "a b"], ["the cat sat on the mat", "a c"])
    assert scores["exact_match"] == 50.0
    assert 0 < scores["bleu"] < 100 and 0 < scores["chrf"] < 100
    assert translation_scores(["x y z w"], ["x y z w"])["bleu"] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="1 hypotheses for 2 references"):
        translation_scores(["a"], ["a", "b"])
