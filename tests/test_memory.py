"""keep_freed_memory: the big tensors of a repeated step are not paged in afresh each time."""

import platform
import subprocess
import sys

import pytest

# a fresh process per setting: it is process-wide and cannot be undone
PROBE = """
import resource, sys, torch
from attnlab.run.memory import keep_freed_memory

applied = keep_freed_memory() if sys.argv[1] == "keep" else None

def step():  # three 64 MB tensors made and freed, as a training step's activations are
    x = torch.empty(64 << 18).fill_(1.0)
    y = x * 2
    z = x + y
    del x, y, z

for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(applied, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
"""


def page_faults_per_step(setting: str):
    out = subprocess.run([sys.executable, "-c", PROBE, setting], capture_output=True, text=True, check=True).stdout.split()
    return out[0], float(out[1])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="a glibc setting")
def test_a_repeated_step_reuses_its_pages():
    pages = 3 * (64 << 20) // 4096  # what the step's three tensors span
    _, default = page_faults_per_step("default")
    applied, kept = page_faults_per_step("keep")
    assert default > pages * 0.8  # glibc's defaults: every tensor mapped afresh and faulted in
    assert applied == "True"
    assert kept < default / 5  # kept: mostly the pages of the step before


PEAK = """
import torch
from attnlab.run.memory import PeakMemory

peak = PeakMemory()
block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
del block
first = peak.mib()
again = PeakMemory()  # a new job: the last one's peak is not its own
print(first, again.mib())
"""


@pytest.mark.skipif(platform.system() != "Linux", reason="the peak resident set is reset through Linux's /proc/self/clear_refs")
def test_peak_memory_counts_what_a_job_added_at_its_peak():
    """In a fresh process: in-process training may have made glibc keep freed heap for reuse."""
    out = subprocess.run([sys.executable, "-c", PEAK], capture_output=True, text=True, check=True).stdout.split()
    first, second = map(float, out)
    assert 60 <= first < 200 and second < 30, out
