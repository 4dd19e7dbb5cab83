"""The shapes of the files attnlab reads back: metrics.json refused at its first wrong key, and
what attnlab writes read back unchanged."""

import math

import pytest

from attnlab.run.results import RunResult
from attnlab.schema import SchemaError, validate

GOOD = RunResult(
    status="ok", task="translation", choices={"arch": "rnn", "attention": "additive", "pos_enc": "none", "data": "numbers"}, seed=3,
    metrics={"val/bleu": 41.5, "test/loss": float("nan")}, report_columns=[["val BLEU", "val/bleu", True]],
    extras={"bleu_by_length": {"test": [{"min_len": 1, "bucket": "1-10", "n": 20, "bleu": 50.0, "exact_match": 10.0}]}, "data_sizes": {"train": 96},
            "loss_by_position": {"test": [{"position": 3, "loss": 1.5, "tokens": 40}]}, "sample": "any text"},
)


def test_what_attnlab_writes_reads_back(tmp_path):
    back = RunResult.read(GOOD.write(tmp_path))
    assert back.metrics["val/bleu"] == 41.5 and math.isnan(back.metrics["test/loss"])
    assert back.extras == GOOD.extras and back.report_columns == GOOD.report_columns


@pytest.mark.parametrize(
    "change, message",
    [
        ({"metrics": [1, 2]}, "metrics must be a mapping, got a list"),
        ({"metrics": {"val/bleu": "high"}}, 'metrics.val/bleu must be a number, got a string "high"'),
        ({"seed": "1"}, "seed must be an integer"),
        ({"status": "done"}, 'status must be "ok" or "failed"'),
        ({"choices": {"arch": 3}}, "choices.arch must be a string"),
        ({"report_columns": [["val BLEU", "val/bleu"]]}, "report_columns[0] must be a list of 3"),
        ({"report_columns": [["val BLEU", "val/bleu", 1]]}, "report_columns[0][2] must be true or false"),
        ({"extras": {"bleu_by_length": {"test": [{"min_len": "one"}]}}}, "extras.bleu_by_length.test[0].min_len must be a number"),
        ({"extras": {"loss_by_position": {"test": [{"position": [3]}]}}}, "extras.loss_by_position.test[0].position must be a plain value"),
        ({"extras": {"data_sizes": {"train": 9.5}}}, "extras.data_sizes.train must be an integer"),
        ({"tags": [{"a": 1}]}, "tags[0] must be a plain value"),
    ],
)
def test_a_misshapen_result_is_refused_at_its_first_wrong_key(change, message, tmp_path):
    data = {**GOOD.to_dict(), **change}
    with pytest.raises(ValueError) as caught:
        RunResult.from_dict(data)
    assert message in str(caught.value)
    path = tmp_path / "metrics.json"
    path.write_text(__import__("json").dumps(data))
    with pytest.raises(ValueError, match=f"^{path}: "):  # on reading, the file is named first
        RunResult.read(path)


def test_strict_records_refuse_keys_they_do_not_name_and_either_tries_each_form():
    tokenizer = {"either": ["str", {"strict": {"kind": "str", "model": {"optional": "str"}}}]}
    validate("word", tokenizer, "tokenizer")
    validate({"kind": "bpe", "model": "{}"}, tokenizer, "tokenizer")
    with pytest.raises(SchemaError, match="tokenizer must be a string or a mapping"):
        validate({"kind": "bpe", "_target_": "os.system"}, tokenizer, "tokenizer")
    with pytest.raises(SchemaError, match="x._target_ is not a key attnlab writes there"):
        validate({"kind": "bpe", "_target_": "os.system"}, {"strict": {"kind": "str"}}, "x")
