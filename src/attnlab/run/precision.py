"""``trainer.precision=auto``: bf16-mixed where the hardware computes bf16 natively, else fp32.

On a CPU without native bf16 instructions autocast emulates them and is slower than fp32; on one
with them (AVX-512 BF16 or AMX) and on a GPU with bf16 the same model trains faster to the same
scores (see the README's precision section for the evidence). Every rank of a DDP job decides the
same way: the answer depends only on the machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

import torch

AUTO = "auto"
NATIVE_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_bf16_flag() -> str:
    """The CPU flag that gives native bf16 matrix multiplies, or '' when there is none."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no evidence, so no bf16
        return ""
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return next((flag for flag in NATIVE_CPU_FLAGS if flag in flags), "")


def resolve(accelerator: str) -> Tuple[str, str]:
    """(precision, why) for ``trainer.precision=auto`` on this machine with this accelerator."""
    gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if gpu:
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return "bf16-mixed", f"auto: {torch.cuda.get_device_name()} computes bf16"
        return "32-true", "auto: this GPU has no bf16"
    flag = cpu_bf16_flag()
    if flag:
        return "bf16-mixed", f"auto: this CPU computes bf16 natively ({flag})"
    return "32-true", "auto: this CPU has no native bf16 (autocast would emulate it, slower than fp32)"
