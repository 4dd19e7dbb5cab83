"""The benchmarks' shared harness: the order rotates, ratios are per round, and docs/benchmarks.md
is rendered from the result files only (no benchmark is run here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def harness():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import harness
        import report

        yield harness, report
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_rotate_moves_the_first_variant_each_round(harness):
    rotate = harness[0].rotate
    calls = []
    results = rotate({"a": "a", "b": "b", "c": "c"}, 4, lambda v: calls.append(v) or len(calls))
    assert calls == list("abc" "bca" "cab" "abc")
    assert results == {"a": [1, 6, 8, 10], "b": [2, 4, 9, 11], "c": [3, 5, 7, 12]}


def test_ratios_are_taken_round_by_round(harness):
    h = harness[0]
    # a slow second round hits both variants: per-round ratios stay 2, a ratio of medians would not
    r = h.ratio_summary([2.0, 20.0, 4.0], [1.0, 10.0, 1.0])
    assert r == {"median": 2.0, "min": 2.0, "max": 4.0}
    assert h.spread(r) == "×2.00 (2.00–4.00)"


def test_the_report_renders_every_published_result_in_order(harness, tmp_path, monkeypatch, capsys):
    h, report = harness
    monkeypatch.setattr(h, "RESULTS", tmp_path)
    h.publish("decoding", "Decoding", [["cache speed-up", "×7.00 (6.50–8.00)"]], h.environment(3))
    monkeypatch.setattr(sys, "argv", ["/somewhere/benchmarks/peers.py", "--compile"])  # the command comes from the process
    h.publish("peers", "Train step", [["attnlab vs x", "×1.01 (1.00–1.10)"]], h.environment(5))
    (tmp_path / "old.json").write_text(json.dumps({"speedup": 3}))  # no rows: an old format, left out
    assert "cache speed-up  ×7.00 (6.50–8.00)" in capsys.readouterr().out
    saved = json.loads((tmp_path / "decoding.json").read_text())
    assert saved["environment"]["rounds"] == 3 and saved["environment"]["threads"] >= 1 and "torch" in saved["environment"]
    md = report.render(tmp_path)
    assert md.index("## Train step") < md.index("## Decoding")  # the train step first, as ORDER says
    assert "| cache speed-up | ×7.00 (6.50–8.00) |" in md and "`python benchmarks/peers.py --compile`" in md
    assert "old" not in md
