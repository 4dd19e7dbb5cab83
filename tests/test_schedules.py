import math

import pytest

import torch

from attnlab.tasks.schedules import lr_multiplier, warmup_schedule


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


def test_warmup_schedule_drives_the_optimizer_learning_rate():
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=2.0)
    schedule = warmup_schedule(optimizer, total_steps=20, name="cosine", warmup_steps=4, min_ratio=0.0)
    rates = []
    for _ in range(20):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates[:4] == pytest.approx([0.5, 1.0, 1.5, 2.0])
    assert rates[-1] < 0.1 and rates == sorted(rates[:4]) + sorted(rates[4:], reverse=True)
