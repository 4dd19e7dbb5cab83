"""trainer.precision=auto: bf16-mixed only where the hardware computes bf16 natively."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from attnlab.run import precision
from attnlab.run.pipeline import data_and_task, resolve_precision
from tests.helpers import CONF, compose_config


@pytest.mark.parametrize(
    "flag,expected",
    [("avx512_bf16", "bf16-mixed"), ("amx_bf16", "bf16-mixed"), ("", "32-true")],
)
def test_a_cpu_gets_bf16_only_with_native_instructions(monkeypatch, flag, expected):
    monkeypatch.setattr(precision, "cpu_bf16_flag", lambda: flag)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    value, why = precision.resolve("auto")
    assert value == expected and why.startswith("auto: this CPU")
    assert (flag in why) if flag else "no native bf16" in why


def test_the_cpu_flag_is_read_from_cpuinfo(monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_tile\n")
    real_path = precision.Path
    monkeypatch.setattr(precision, "Path", lambda p: cpuinfo if p == "/proc/cpuinfo" else real_path(p))
    assert precision.cpu_bf16_flag() == "avx512_bf16"
    cpuinfo.write_text("flags\t\t: fpu avx2\n")
    assert precision.cpu_bf16_flag() == ""


def test_a_gpu_without_bf16_keeps_fp32(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert precision.resolve("gpu")[0] == "32-true"


def test_every_trainer_defaults_to_auto():
    for path in sorted((CONF / "trainer").glob("*.yaml")):  # the rest inherit default.yaml's
        assert OmegaConf.load(path).get("precision") in (None, "auto"), path.name
    assert OmegaConf.load(CONF / "trainer" / "default.yaml").precision == "auto"


def test_auto_is_made_concrete_in_the_config_and_said(tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_flag", lambda: "avx512_bf16")
    cfg = compose_config(tmp_path, ["trainer.precision=auto", "trainer.accelerator=cpu"])
    said = resolve_precision(cfg)
    assert cfg.trainer.precision == "bf16-mixed"  # what Lightning and every logger get
    assert said.startswith("bf16-mixed (auto: this CPU computes bf16 natively (avx512_bf16)") and "trainer.precision=32-true" in said
    cfg = compose_config(tmp_path, ["trainer.precision=32-true"])
    assert resolve_precision(cfg) == "32-true" and cfg.trainer.precision == "32-true"


@pytest.mark.parametrize("algorithm", ["norm", "value"])
def test_bf16_mixed_clips_the_gradients_of_the_fused_optimizer(tmp_path, data_dir, algorithm):
    """Lightning refuses gradient clipping for a fused optimizer under any mixed precision (under
    fp16 the step unscales after clipping); bf16 has no scaler, so attnlab's tasks clip there."""
    import lightning as L

    cfg = compose_config(tmp_path, [], data_dir)
    assert cfg.task.optimizer.fused is True  # the default of every task
    _, task = data_and_task(cfg)
    trainer = L.Trainer(accelerator="cpu", precision="bf16-mixed", gradient_clip_val=0.01, gradient_clip_algorithm=algorithm, logger=False)
    task.trainer = trainer
    optimizer = task.configure_optimizers()["optimizer"]
    assert optimizer.defaults["fused"] is True
    for p in task.parameters():
        p.grad = torch.ones_like(p)
    task.configure_gradient_clipping(optimizer, 0.01, algorithm)
    grads = [p.grad for p in task.parameters()]
    if algorithm == "norm":
        assert torch.nn.utils.get_total_norm(grads).item() == pytest.approx(0.01, rel=1e-3)
    else:
        assert max(g.abs().max().item() for g in grads) == pytest.approx(0.01)
    with pytest.raises(RuntimeError, match="fused"):  # what Lightning's own hook does
        L.LightningModule.configure_gradient_clipping(task, optimizer, 0.01, algorithm)
