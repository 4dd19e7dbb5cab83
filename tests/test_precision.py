"""trainer.precision=auto: bf16-mixed only where the hardware computes bf16 natively."""

from __future__ import annotations

import pytest
import torch

from attnlab.run import precision
from attnlab.run.pipeline import resolve_precision
from tests.helpers import compose_config


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


def test_auto_is_made_concrete_in_the_config_and_said(tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_flag", lambda: "avx512_bf16")
    cfg = compose_config(tmp_path, ["trainer.precision=auto", "trainer.accelerator=cpu"])
    said = resolve_precision(cfg)
    assert cfg.trainer.precision == "bf16-mixed"  # what Lightning and every logger get
    assert said.startswith("bf16-mixed (auto: this CPU computes bf16 natively (avx512_bf16)") and "trainer.precision=32-true" in said
    cfg = compose_config(tmp_path, ["trainer.precision=32-true"])
    assert resolve_precision(cfg) == "32-true" and cfg.trainer.precision == "32-true"
