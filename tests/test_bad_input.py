"""Bad input, as a new user (or an attacker) types it, through every command-line entry point:
one clear line on stderr that names the key, file or line, the right exit code, no traceback,
and nothing lost or created that should not be.

The table holds (name, command, stdin, expected fragment of stderr, exit code). New entry points
join the table. train.py and eval.py run as processes (Hydra's command line is what they test),
two at a time in a module fixture; the console tools run in this process through their
``main(argv)``, with stdin, stdout and stderr redirected and any escaping exception written to
stderr as its traceback, so a crash still fails its case. Each case is its own test.
"""

from __future__ import annotations

import base64
import functools
import importlib
import importlib.util
import io
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Optional

import pytest
import torch

from attnlab.run.pipeline import train
from attnlab.run.results import RunResult
from tests.helpers import ROOT, TINY, TINY_ARCH, compose_config, run_in_process, run_tool

PY = sys.executable
TRAIN, EVAL = [PY, str(ROOT / "train.py")], [PY, str(ROOT / "eval.py")]
# the console tools, run in-process: "module:" then the arguments
TRANSLATE, AVERAGE, REPORT = ["attnlab.cli.translate:"], ["attnlab.cli.average:"], ["attnlab.cli.report:"]
COMPARE, SVM = ["attnlab.cli.compare:"], ["attnlab.cli.baseline:"]
FILL_MASK, GENERATE, DASHBOARD = ["attnlab.cli.fill_mask:"], ["attnlab.cli.generate:"], ["attnlab.cli.dashboard:"]
BIBLE = ["attnlab.data.bible:"]
HEADS, VIEW = ["attnlab.cli.heads:"], ["attnlab.cli.view:"]
WANDB_GROUP = ["--entity", "e", "--project", "p", "--group", "g"]


class CreatesFile:
    """Unpickled, this opens (creates) a file: the harmless payload of the attack."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def code_running_chain(marker: Path) -> dict:
    """Only dicts and strings, yet hydra.utils.instantiate would unpickle the payload through
    torch.load(weights_only=False) <- io.BytesIO <- base64.b64decode."""
    buffer = io.BytesIO()
    torch.save(CreatesFile(marker), buffer)  # a pickle inside torch's own file format
    blob = base64.b64encode(buffer.getvalue()).decode()
    return {
        "_target_": "torch.load",
        "f": {"_target_": "io.BytesIO", "initial_bytes": {"_target_": "base64.b64decode", "s": blob}},
        "weights_only": False,
    }


@dataclass
class Case:
    name: str
    command: List[str]
    fragment: str  # must appear in stderr
    code: int  # the exit code
    stdin: Optional[bytes] = None
    check: Optional[Callable[[subprocess.CompletedProcess], None]] = None  # more to assert
    process: bool = False  # a process of its own: what train.py does before Hydra starts is tested
    proc: Optional[subprocess.CompletedProcess] = None


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A workspace: a trained tiny model with learned positions (max_len 32), and the bad files."""
    root = tmp_path_factory.mktemp("bad_input")
    data_dir = root / "data"
    # trained long enough to say something (an untrained model's translations are all empty)
    cfg = compose_config(root / "trained", ["pos_enc=learned", "pos_enc.max_len=32", "trainer.max_epochs=8", "task.scheduler.warmup_steps=5", "task.optimizer.lr=3e-3"], data_dir)
    good = Path(train(cfg).checkpoint)
    payload = torch.load(good, weights_only=True)
    # a model without heads: the RNN with Bahdanau's additive attention (one epoch of the tiny corpus)
    rnn = Path(train(compose_config(root / "rnn", ["arch=rnn", "attention=additive"], data_dir)).checkpoint)

    files = {"good": good, "rnn": rnn, "data": data_dir, "root": root, "marker": root / "PWNED"}
    for key in ("arch", "data"):  # the chain where the model is rebuilt, and where eval.py rebuilds the data
        evil = {**payload, "hyper_parameters": {**payload["hyper_parameters"], key: code_running_chain(files["marker"])}}
        torch.save(evil, root / f"evil_{key}.ckpt")
    hp = payload["hyper_parameters"]
    torch.save({**payload, "state_dict": [1, 2]}, root / "state_list.ckpt")
    torch.save({**payload, "hyper_parameters": {**hp, "init_from": str(root / "elsewhere.ckpt")}}, root / "init_from.ckpt")
    torch.save({**payload, "hyper_parameters": {**hp, "decoding": {**hp["decoding"], "strategy": {"_target_": "os.system", "command": "true"}}}}, root / "target_decoding.ckpt")
    for name in ("copy.ckpt", "copy.ckpt.png"):  # inputs an output must not overwrite
        (root / name).write_bytes(good.read_bytes())
    (root / "existing.ckpt").write_bytes(b"an earlier average")
    misshapen = {  # valid JSON, wrong shapes: one job is fine, three are listed as failed
        "0": RunResult(status="ok", task="translation", choices={"arch": "transformer", "attention": "multihead", "pos_enc": "sinusoidal", "data": "numbers"}, seed=1,
                       metrics={"val/bleu": 50.0}, report_columns=[["val BLEU", "val/bleu", True]]).to_dict(),
        "1": {"status": "ok", "metrics": [1, 2]},
        "2": {"status": "ok", "metrics": {"val/bleu": "high"}},
        "3": {"status": "ok", "seed": "one"},
    }
    for job, content in misshapen.items():
        (root / "misshapen" / job / ".hydra").mkdir(parents=True)
        (root / "misshapen" / job / ".hydra" / "config.yaml").write_text("seed: 1\n")
        (root / "misshapen" / job / "metrics.json").write_text(json.dumps(content))
    resume_dir = root / "evil_run"
    (resume_dir / "checkpoints").mkdir(parents=True)
    (resume_dir / "checkpoints" / "last.ckpt").write_bytes((root / "evil_arch.ckpt").read_bytes())
    (root / "truncated.ckpt").write_bytes(good.read_bytes()[:5000])
    torch.save({"state_dict": {"w": torch.zeros(2)}}, root / "foreign.ckpt")
    torch.save({"state_dict": {"w": torch.zeros(2)}, "hyper_parameters": {"lr": 1.0}}, root / "foreign_hparams.ckpt")
    sweep = root / "sweep" / "0"
    (sweep / ".hydra").mkdir(parents=True)
    (sweep / ".hydra" / "config.yaml").write_text("seed: 1\n")
    (sweep / "metrics.json").write_text("")
    (root / "bad.tsv").write_text("uno\tone\ndos\n", encoding="utf-8")
    (root / "empty.tsv").write_text("", encoding="utf-8")
    (root / "two.tsv").write_text("uno\tone\ndos\ttwo\n", encoding="utf-8")
    (root / "labels_train.tsv").write_text("a cat\tanimal\na car\tvehicle\n", encoding="utf-8")
    (root / "labels_test.tsv").write_text("a cow\tanimal\nan apple\tfood\n", encoding="utf-8")
    (root / "story.txt").write_text("once upon a time there was a cat.\n" * 20, encoding="utf-8")
    (root / "short.txt").write_text("too short\n", encoding="utf-8")
    (root / "empty_sweep").mkdir()
    runs_for_tests(root, root / "trained" / "out")
    return files


def runs_for_tests(root: Path, trained: Path) -> None:
    """Copies of the trained run for attnlab-compare and the report's tests: one configuration
    twice in a sweep, a run scored on other examples, a run from before per-example outputs, and
    one whose examples file is corrupt."""
    from attnlab.stats import examples

    def copy(name, attention="multihead", rows_edit=None, keep_examples=True, corrupt=False):
        result = RunResult.read(trained / "metrics.json")
        result.choices = {**result.choices, "attention": attention}
        out = root / name
        (out / ".hydra").mkdir(parents=True)
        (out / ".hydra" / "config.yaml").write_text("seed: 1\n")
        rows = [json.loads(line) for line in (trained / "test_examples.jsonl").read_text().splitlines()]
        if rows_edit:
            rows_edit(rows)
        if keep_examples:
            examples.write(out, "test", rows)
            described = result.extras["examples"]["test"]
            result.extras["examples"] = {"test": examples.describe("test", rows, described["identity"], described["measures"])}
        else:
            result.extras.pop("examples")
        if corrupt:
            lines = (out / "test_examples.jsonl").read_text().splitlines()
            lines[2] = "{not json"
            (out / "test_examples.jsonl").write_text("\n".join(lines) + "\n")
        result.write(out)

    copy("okay_sweep/0")
    copy("okay_sweep/1", attention="dot")
    copy("run_a")
    copy("run_other_examples", rows_edit=lambda rows: rows[4].update(reference=rows[4]["reference"] + " más"))
    copy("run_before_examples", keep_examples=False)
    copy("run_corrupt_examples", corrupt=True)
    copy("mixed_sweep/0")
    copy("mixed_sweep/1", attention="dot", keep_examples=False)


def cases(ws) -> List[Case]:
    root, good, data, rnn = ws["root"], ws["good"], ws["data"], ws["rnn"]
    logs = f"paths.log_dir={root / 'logs'}"
    quick = [*TINY, *TINY_ARCH["transformer"], logs, f"paths.data_dir={data}"]
    bad_tsv = root / "bad.tsv"

    def train_case(name, args, fragment, data_sizes=True, **kw):
        base = quick if data_sizes else [o for o in quick if not o.startswith("data.corpus.")]
        return Case(f"train:{name}", [*TRAIN, *base, *args], fragment, 1, **kw)

    def text_case(name, task, args, fragment):
        """The text tasks have no decoder: the quick settings without the translation task's keys."""
        base = ["logger=none", logs, f"paths.data_dir={data}", *TINY_ARCH["transformer"], f"task={task}"]
        return Case(f"train:{name}", [*TRAIN, *base, *args], fragment, 1)

    own_texts = [f"data.corpus.{split}={root / 'labels_train.tsv'}" for split in ("train", "val", "test")]

    def no_directory(path):
        def check(proc):
            assert not Path(path).exists()
        return check

    def one_line_per_input(proc):
        first, empty, third = proc.stdout.splitlines()  # three input lines, three output lines
        assert first and empty == "" and third

    def translated_anyway(proc):
        (line,) = proc.stdout.splitlines()
        assert line

    def unchanged(path):
        before = Path(path).read_bytes() if Path(path).exists() else None

        def check(proc):
            assert Path(path).read_bytes() == before, f"{path} was written over"
        return check

    def report_lists_misshapen(proc):
        text = (root / "misshapen" / "report.md").read_text()
        assert "4 jobs: 1 finished, 3 failed." in text, text
        assert "metrics must be a mapping, got a list" in text and "metrics.val/bleu must be a number" in text and "seed must be an integer" in text, text

    def report_says_untested(proc):
        text = (root / "mixed_sweep" / "report.md").read_text()
        untested = text.split("Not tested:")[1].split("How to read")[0].strip()
        assert untested.startswith("- transformer / dot / learned: ") and "has no per-example outputs for its test split" in untested, text

    def names_line_5(proc):
        assert "test_examples.jsonl:5" in proc.stderr and "differ in reference" in proc.stderr, proc.stderr

    def report_lists_it(proc):
        text = (root / "sweep" / "report.md").read_text()
        assert "1 jobs: 0 finished, 1 failed." in text and "unreadable" in text

    return [
        # -- train.py: values checked before anything is built ---------------------------------
        train_case("batch_size_0", ["data.batch_size=0"], "attnlab: invalid configuration: data.batch_size=0 must be a positive integer", process=True),
        train_case("interval_resamples_5", ["interval_resamples=5"], "interval_resamples=5 must be 0 (no intervals) or an integer in [100, 100000]"),
        train_case("max_tokens_0", ["data.max_tokens=0"], "data.max_tokens=0 must be a positive integer or null"),
        train_case("train_size_0", ["data.corpus.train_size=0"], "data.corpus.train_size=0 must be a positive integer"),
        train_case("lr_negative", ["task.optimizer.lr=-0.1"], "task.optimizer.lr=-0.1 must be a number > 0"),
        train_case("warmup_negative", ["task.scheduler.warmup_steps=-5"], "task.scheduler.warmup_steps=-5 must be an integer >= 0"),
        train_case("label_smoothing_1", ["task.label_smoothing=1.0"], "task.label_smoothing=1.0 must be a number in [0, 1)"),
        train_case("beam_size_0", ["task.decoding.beam_size=0"], "task.decoding.beam_size=0 must be a positive integer"),
        train_case("max_epochs_text", ["trainer.max_epochs=ten"], "trainer.max_epochs=ten must be a positive integer (or -1: no limit); train=false evaluates without training or null"),
        train_case("max_epochs_0", ["trainer.max_epochs=0"], "trainer.max_epochs=0 must be a positive integer (or -1: no limit)"),
        train_case("max_steps_0", ["trainer.max_steps=0"], "trainer.max_steps=0 must be a positive integer (or -1: no limit); train=false evaluates without training"),
        train_case("seed_negative", ["seed=-1"], "seed=-1 must be an integer in [0, 4294967295]"),
        train_case("seed_too_large", ["seed=99999999999"], "seed=99999999999 must be an integer in [0, 4294967295]"),
        train_case("lr_nan", ["task.optimizer.lr=nan"], "task.optimizer.lr=nan must be a number > 0"),
        train_case("lr_inf", ["task.optimizer.lr=inf"], "task.optimizer.lr=inf must be a number > 0"),
        train_case("width_huge", ["arch.d_model=1000000000"], "arch.d_model=1000000000 must be a positive integer up to 65536"),
        train_case("layers_huge", ["arch.num_encoder_layers=100000"], "arch.num_encoder_layers=100000 must be a positive integer up to 1024"),
        train_case("beam_huge", ["task.decoding.beam_size=100000"], "task.decoding.beam_size=100000 must be a positive integer up to 256"),
        train_case("data_seed_text", ["data.seed=abc"], "data.seed=abc must be an integer in [0, 4294967295]"),
        train_case("dropout_1", ["arch.dropout=1.5"], "arch.dropout=1.5 must be a number in [0, 1)"),
        train_case("heads_0", ["attention.num_heads=0"], "attention.num_heads=0 must be a positive integer"),
        train_case("keep_freed_memory_text", ["keep_freed_memory=maybe"], "keep_freed_memory=maybe must be true or false"),
        train_case("fp16_clipping_fused", ["trainer.precision=16-mixed"], "trainer.precision=16-mixed cannot clip gradients (trainer.gradient_clip_val=1.0) for a fused optimizer: set task.optimizer.fused=false"),
        train_case("optimizer_without_fused", ["task.optimizer._target_=torch.optim.RMSprop", "~task.optimizer.betas"],
                   "task.optimizer: RMSprop.__init__() got an unexpected keyword argument 'fused'; drop a key it does not take with ~task.optimizer.<key>"),
        # -- train.py: combinations and components -----------------------------------------------
        train_case("transformer_without_attention", ["attention=none"], "attention=none cannot be used with arch=transformer"),
        train_case("width_not_divisible", ["arch.d_model=30"], "arch.d_model=30 is not divisible by attention.num_heads=4"),
        train_case("rotary_without_dot_product", ["attention=additive", "pos_enc=rotary"], "attention=additive cannot use pos_enc=rotary"),
        Case("train:rnn_with_alibi", [*TRAIN, *TINY, *TINY_ARCH["rnn"], logs, f"paths.data_dir={data}", "arch=rnn", "attention=additive", "pos_enc=alibi"],
             "arch=rnn takes pos_enc none, learned or sinusoidal: pos_enc=alibi acts inside self-attention", 1),
        train_case("kv_heads_not_dividing", ["attention.num_kv_heads=3"], "attention.num_heads=4 is not a multiple of attention.num_kv_heads=3"),
        train_case("unregistered_target", ["attention._target_=collections.OrderedDict"], "attention._target_=collections.OrderedDict is not a registered attnlab component"),
        # -- train.py: the attention kinds after 2019 ---------------------------------------------
        train_case("local_window_0", ["attention=local", "attention.window=0"], "attention.window=0 must be a positive integer up to 1048576"),
        Case("train:local_in_an_rnn", [*TRAIN, *TINY, *TINY_ARCH["rnn"], logs, f"paths.data_dir={data}", "arch=rnn", "attention=local"],
             "arch=rnn cannot use attention=local: its window is counted along one sequence", 1),
        train_case("linear_feature_map_nonsense", ["attention=linear", "attention.feature_map=nonsense"], "attention.feature_map must be one of elu, favor; got 'nonsense'"),
        train_case("linear_num_features_0", ["attention=linear", "attention.feature_map=favor", "attention.num_features=0"], "attention.num_features=0 must be a positive integer up to 65536 or null"),
        train_case("linear_odd_features_rotary", ["attention=linear", "attention.feature_map=favor", "attention.num_features=7", "pos_enc=rotary"], "attention.num_features=7 is odd: pos_enc=rotary rotates pairs of features"),
        train_case("linear_with_alibi", ["attention=linear", "pos_enc=alibi"], "attention=linear cannot use pos_enc=alibi: it adds a bias to every query-key score"),
        train_case("linear_with_t5", ["attention=linear", "pos_enc=t5"], "attention=linear cannot use pos_enc=t5: it adds a bias to every query-key score"),
        train_case("linear_with_dropout", ["attention=linear", "attention.dropout=0.1"], "attention.dropout=0.1: attention=linear forms no attention weights to drop"),
        train_case("mla_latent_wider_than_model", ["attention=mla", "attention.kv_latent_dim=64"], "attention.kv_latent_dim=64 must be in [1, arch.d_model=32]"),
        train_case("mla_odd_rope_dim", ["attention=mla", "pos_enc=rotary", "attention.rope_dim=3"], "attention.rope_dim=3 must be an even number"),
        train_case("differential_width", ["attention=differential", "arch.d_model=36"], "arch.d_model=36 is not divisible by 2 × attention.num_heads=4"),
        train_case("differential_lambda_1", ["attention=differential", "attention.lambda_init=1.0"], "attention.lambda_init=1.0 must be a number in [0, 1) or null"),
        text_case("local_window_past_block", "lm", ["data=text_stream", *[f"data.corpus.{s}={root / 'story.txt'}" for s in ("train", "val", "test")], "attention=local", "attention.window=64", "data.block_size=32"],
                  "attention.window=64 is not smaller than data.block_size=32: every query would see the whole block"),
        train_case("missing_values", ["data=parallel_files"], "missing required value(s): data.corpus.test, data.corpus.train, data.corpus.val", data_sizes=False),
        # -- train.py: data ------------------------------------------------------------------------------
        train_case("malformed_tsv", ["data=parallel_files", f"data.corpus.train={bad_tsv}", f"data.corpus.val={bad_tsv}", f"data.corpus.test={bad_tsv}"],
                   f"attnlab: data error: {bad_tsv}:2: expected 2 tab-separated columns (source, target), found 1", data_sizes=False),
        train_case("missing_file", ["data=parallel_files", f"data.corpus.train={root / 'nope.tsv'}", f"data.corpus.val={bad_tsv}", f"data.corpus.test={bad_tsv}"],
                   f"data.corpus.train: no such file: {root / 'nope.tsv'}", data_sizes=False),
        train_case("empty_training_split", ["data=parallel_files", f"data.corpus.train={root / 'empty.tsv'}", f"data.corpus.val={root / 'two.tsv'}", f"data.corpus.test={root / 'two.tsv'}"],
                   "data.corpus.train: no usable sentence pairs", data_sizes=False),
        train_case("missing_apt_package", ["data=bible", f"data.corpus.sword_path={root}"], "apt-get install -y sword-text-sparv sword-text-web sword-text-kjv", data_sizes=False),
        # -- train.py: checkpoints ---------------------------------------------------------------------
        train_case("ckpt_missing", [f"ckpt_path={root / 'nope.ckpt'}"], f"attnlab: checkpoint error: no checkpoint at {root / 'nope.ckpt'}"),
        train_case("ckpt_truncated", [f"ckpt_path={root / 'truncated.ckpt'}"], f"{root / 'truncated.ckpt'} cannot be loaded as a weights-only checkpoint"),
        train_case("ckpt_code_running", [f"ckpt_path={root / 'evil_arch.ckpt'}"], "arch._target_='torch.load' names code, not an attnlab component; refused", process=True),
        train_case("ckpt_other_model", [f"ckpt_path={good}", "pos_enc=sinusoidal"], "holds weights of another model than this configuration"),
        train_case("resume_missing_dir", [f"resume={root / 'no_such_run'}"], f"resume={root / 'no_such_run'}: no such run directory", check=no_directory(root / "no_such_run"), process=True),
        train_case("resume_code_running", [f"resume={root / 'evil_run'}"], "arch._target_='torch.load' names code"),
        # -- train.py: the text tasks -------------------------------------------------------------
        text_case("classification_on_translation_data", "classification", ["data=numbers", "data.corpus.train_size=96"], "data=numbers gives translation data, but task=classification reads text data"),
        text_case("wordnet_missing", "classification", ["data=wordnet", f"data.corpus.wordnet_path={root}"], "apt-get install -y --no-install-recommends wordnet-base"),
        text_case("label_only_in_test", "classification", ["data=text_files", *own_texts[:2], f"data.corpus.test={root / 'labels_test.tsv'}"],
                  f"{root / 'labels_test.tsv'}:2: label 'food' never occurs in the training file"),
        text_case("finetune_from_translation", "classification", ["data=text_files", *own_texts, f"task.init_from={good}"], "fine-tuning starts from a masked-LM (task=mlm) checkpoint"),
        text_case("mask_prob_1", "mlm", ["data=text_files", *own_texts, "task.mask_prob=1.0"], "task.mask_prob=1.0 must be a number in (0, 1)"),
        text_case("pooling_unknown", "classification", ["data=text_files", *own_texts, "task.pooling=max"], "task.pooling must be one of cls, mean, attention; got 'max'"),
        text_case("lm_block_past_learned_positions", "lm", ["data=text_stream", *[f"data.corpus.{s}={root / 'story.txt'}" for s in ("train", "val", "test")], "pos_enc=learned", "pos_enc.max_len=32", "data.block_size=64"],
                  "pos_enc.max_len=32 is shorter than the longest sequence of data=text_stream (64 tokens)"),
        text_case("lm_text_shorter_than_a_block", "lm", ["data=text_stream", f"data.corpus.train={root / 'story.txt'}", f"data.corpus.val={root / 'short.txt'}", f"data.corpus.test={root / 'story.txt'}"],
                  "the val split has 9 tokens, fewer than one block (data.block_size=64 + 1 for the targets)"),
        text_case("lm_missing_file", "lm", ["data=text_stream", f"data.corpus.train={root / 'nope.txt'}", f"data.corpus.val={root / 'story.txt'}", f"data.corpus.test={root / 'story.txt'}"],
                  f"data.corpus.train: no such file: {root / 'nope.txt'}"),
        text_case("lm_top_p", "lm", ["data=text_stream", *[f"data.corpus.{s}={root / 'story.txt'}" for s in ("train", "val", "test")], "task.top_p=0"], "task.top_p=0 must be a number in (0, 1] or null"),
        # -- eval.py -----------------------------------------------------------------------------------
        Case("eval:ckpt_missing", [*EVAL, f"ckpt_path={root / 'nope.ckpt'}", logs], f"attnlab eval: checkpoint error: no checkpoint at {root / 'nope.ckpt'}", 1, process=True),
        Case("eval:ckpt_foreign", [*EVAL, f"ckpt_path={root / 'foreign.ckpt'}", logs], "is not an attnlab checkpoint", 1),
        Case("eval:ckpt_foreign_hparams", [*EVAL, f"ckpt_path={root / 'foreign_hparams.ckpt'}", logs], "is not an attnlab translation checkpoint (missing arch, attention, pos_enc", 1),
        Case("eval:model_code_running", [*EVAL, f"ckpt_path={root / 'evil_arch.ckpt'}", logs], "arch._target_='torch.load' names code", 1),
        Case("eval:data_code_running", [*EVAL, f"ckpt_path={root / 'evil_data.ckpt'}", logs], "data._target_='torch.load' names code", 1),
        Case("eval:bad_split", [*EVAL, f"ckpt_path={good}", "split=train", logs], "split must be one of val, test; got 'train'", 1),
        Case("eval:beam_size_0", [*EVAL, f"ckpt_path={good}", "decoding.beam_size=0", logs], "decoding.beam_size=0 must be a positive integer up to 256 or null", 1),
        Case("eval:seed_negative", [*EVAL, f"ckpt_path={good}", "seed=-3", logs], "seed=-3 must be an integer in [0, 4294967295]", 1),
        Case("eval:state_dict_not_a_mapping", [*EVAL, f"ckpt_path={root / 'state_list.ckpt'}", logs], "state_dict must be a mapping of parameter names to tensors, got list", 1),
        Case("eval:bad_strategy", [*EVAL, f"ckpt_path={good}", "decoding.strategy=sample", logs], "decoding.strategy must be one of greedy, beam; got 'sample'", 1),
        Case("eval:no_ckpt_path", [*EVAL, logs], "missing required value(s): ckpt_path", 1),
        # -- attnlab-translate ------------------------------------------------------------------------
        # -- task.head_mask: heads switched off at evaluation (attnlab.heads.gates) ----------------------
        Case("eval:head_mask_wrong_shape", [*EVAL, f"ckpt_path={good}", "task.head_mask={cross:[[1,0]]}", logs], "task.head_mask.cross must be 1 rows (layers) of 4 gates (heads), as cross attention has; got [[1, 0]]", 1),
        Case("eval:head_mask_every_head", [*EVAL, f"ckpt_path={good}", "task.head_mask=[encoder_self,decoder_self,cross]", logs], "switches off every head of", 1),
        Case("eval:head_mask_no_such_head", [*EVAL, f"ckpt_path={good}", "task.head_mask=[cross.0.9]", logs], "task.head_mask[0]='cross.0.9': cross has heads 0–3", 1),
        Case("eval:head_mask_unknown_kind", [*EVAL, f"ckpt_path={good}", "task.head_mask=[self.0]", logs], "has no headed attention 'self'; it has encoder_self 1×4, decoder_self 1×4, cross 1×4 (layers × heads)", 1),
        Case("eval:head_mask_gate_nan", [*EVAL, f"ckpt_path={good}", "task.head_mask={cross:[[1,nan,1,1]]}", logs], "task.head_mask.cross[0][1]=nan must be a number in [0, 1]", 1),
        Case("eval:head_mask_a_number", [*EVAL, f"ckpt_path={good}", "task.head_mask=3", logs], "task.head_mask=3 must be null, a list of heads to switch off", 1),
        Case("eval:head_mask_without_heads", [*EVAL, f"ckpt_path={rnn}", "task.head_mask=[cross.0]", logs], "has no attention heads to gate: its attention (attention=additive) has no heads", 1),
        train_case("head_mask_wrong_layer", ["task.head_mask=[cross.3]"], "task.head_mask[0]='cross.3': cross has layers 0–0"),
        # -- attnlab-heads and attnlab-view --------------------------------------------------------------
        Case("heads:without_heads", [*HEADS, "--ckpt", str(rnn), "--out", str(root / "heads")], "has no attention heads to gate: its attention (attention=additive) has no heads", 2, check=no_directory(root / "heads")),
        Case("heads:ckpt_missing", [*HEADS, "--ckpt", str(root / "nope.ckpt"), "--out", str(root / "heads")], f"attnlab-heads: no checkpoint at {root / 'nope.ckpt'}", 2),
        Case("heads:out_is_file", [*HEADS, "--ckpt", str(good), "--out", str(root / "bad.tsv")], f"argument --out: {root / 'bad.tsv'} is a file, not a directory", 2),
        Case("heads:batches_0", [*HEADS, "--ckpt", str(good), "--batches", "0"], "argument --batches: must be an integer in [1, 10000000]; got '0'", 2),
        Case("heads:tolerance_nan", [*HEADS, "--ckpt", str(good), "--tolerance", "nan"], "argument --tolerance: must be a number in [0, 1000]; got 'nan'", 2),
        Case("heads:split_train", [*HEADS, "--ckpt", str(good), "--split", "train"], "argument --split: invalid choice: 'train'", 2),
        Case("heads:unknown_metric", [*HEADS, "--ckpt", str(good), "--metric", "accuracy", "--out", str(root / "heads_metric")], "--metric accuracy: the translation evaluation reports bleu, chrf, exact_match, loss, ppl", 2),
        Case("heads:code_running", [*HEADS, "--ckpt", str(root / "evil_arch.ckpt"), "--out", str(root / "heads")], "arch._target_='torch.load' names code", 2),
        Case("view:ckpt_missing", [*VIEW, "--ckpt", str(root / "nope.ckpt"), "uno", "--out", str(root / "v.html")], f"attnlab-view: no checkpoint at {root / 'nope.ckpt'}", 2, check=no_directory(root / "v.html")),
        Case("view:out_not_html", [*VIEW, "--ckpt", str(good), "uno", "--out", str(root / "v.png")], "the file name must end in .html or .htm", 2),
        Case("view:out_is_dir", [*VIEW, "--ckpt", str(good), "uno", "--out", str(root)], f"argument --out: '{root}' is a directory; give a file name", 2),
        Case("view:empty_text", [*VIEW, "--ckpt", str(good), " ", "--out", str(root / "v.html")], "input 1 is empty; give the text to look at", 2),
        Case("view:no_text", [*VIEW, "--ckpt", str(good)], "the following arguments are required: TEXT", 2),
        Case("translate:ckpt_missing", [*TRANSLATE, "--ckpt", str(root / "nope.ckpt"), "uno"], "attnlab-translate: no checkpoint at", 2),
        Case("translate:code_running", [*TRANSLATE, "--ckpt", str(root / "evil_arch.ckpt"), "uno"], "arch._target_='torch.load' names code", 2),
        Case("translate:beam_0", [*TRANSLATE, "--ckpt", str(good), "--beam", "0", "uno"], "argument --beam: must be an integer in [1, 256]; got '0'", 2),
        Case("translate:beam_huge", [*TRANSLATE, "--ckpt", str(good), "--beam", "1000000000", "uno"], "argument --beam: must be an integer in [1, 256]", 2),
        Case("translate:beam_text", [*TRANSLATE, "--ckpt", str(good), "--beam", "five", "uno"], "argument --beam: must be an integer in [1, 256]; got 'five'", 2),
        Case("translate:alpha_nan", [*TRANSLATE, "--ckpt", str(good), "--alpha", "nan", "uno"], "argument --alpha: must be a number in [0, 10]; got 'nan'", 2),
        Case("translate:alpha_inf", [*TRANSLATE, "--ckpt", str(good), "--alpha", "inf", "uno"], "argument --alpha: must be a number in [0, 10]; got 'inf'", 2),
        Case("translate:alpha_negative", [*TRANSLATE, "--ckpt", str(good), "--alpha", "-1", "uno"], "argument --alpha: must be a number in [0, 10]", 2),
        Case("translate:n_best_over_beam", [*TRANSLATE, "--ckpt", str(good), "--beam", "2", "--n-best", "3", "uno"], "argument --n-best: must be at most --beam (2); got 3", 2),
        Case("translate:plot_is_dir", [*TRANSLATE, "--ckpt", str(good), "--plot", str(root), "uno"], f"argument --plot: '{root}' is a directory; give a file name", 2),
        Case("translate:plot_missing_dir", [*TRANSLATE, "--ckpt", str(good), "--plot", str(root / "no" / "a.png"), "uno"], f"the directory {root / 'no'} does not exist", 2),
        Case("translate:plot_extension", [*TRANSLATE, "--ckpt", str(good), "--plot", str(root / "a.txt"), "uno"], "the file name must end in .png or .pdf or .svg", 2),
        Case("translate:plot_over_input", [*TRANSLATE, "--ckpt", str(root / "copy.ckpt.png"), "--plot", str(root / "copy.ckpt.png"), "uno"], "is one of this command's inputs; write elsewhere", 2,
             check=unchanged(root / "copy.ckpt.png")),
        Case("translate:device_unknown", [*TRANSLATE, "--ckpt", str(good), "--device", "mps", "uno"], "--device mps: attnlab-translate runs on cpu or cuda[:N]", 2),
        Case("translate:state_dict_not_a_mapping", [*TRANSLATE, "--ckpt", str(root / "state_list.ckpt"), "uno"], "state_dict must be a mapping of parameter names to tensors", 2),
        Case("translate:path_in_hparams", [*TRANSLATE, "--ckpt", str(root / "init_from.ckpt"), "uno"], "hyper_parameters.init_from is not a key attnlab writes for task=translation; refused", 2),
        Case("translate:target_in_hparams", [*TRANSLATE, "--ckpt", str(root / "target_decoding.ckpt"), "uno"], "hyper_parameters.decoding.strategy must be a plain value, got a mapping", 2),
        Case("translate:not_utf8", [*TRANSLATE, "--ckpt", str(good)], "stdin line 2 is not UTF-8", 2, stdin=b"uno\n\xff\xfedos\n"),
        Case("translate:nothing", [*TRANSLATE, "--ckpt", str(good)], "nothing to translate", 2, stdin=b"\n\n"),
        Case("translate:no_gpu", [*TRANSLATE, "--ckpt", str(good), "--device", "cuda", "uno"], "--device cuda: no CUDA device is available here", 2),
        Case("translate:500_words", [*TRANSLATE, "--ckpt", str(good)], "line 1: 500 tokens, but this model reads at most 31", 0,
             stdin=(" ".join(["mil"] * 500) + "\n").encode(), check=translated_anyway),
        Case("translate:empty_line", [*TRANSLATE, "--ckpt", str(good)], "", 0, stdin="veintiún mil\n\ntres\n".encode(), check=one_line_per_input),
        # -- attnlab-fill-mask ---------------------------------------------------------------------------
        Case("fill_mask:ckpt_missing", [*FILL_MASK, "--ckpt", str(root / "nope.ckpt"), "a [MASK]"], "attnlab-fill-mask: no checkpoint at", 2),
        Case("fill_mask:not_mlm", [*FILL_MASK, "--ckpt", str(good), "a [MASK]"], "holds a translation model, not a masked language model", 2),
        Case("fill_mask:no_mask", [*FILL_MASK, "--ckpt", str(good), "nothing to fill here"], "no [MASK] in 'nothing to fill here'", 2),
        Case("fill_mask:top_k_0", [*FILL_MASK, "--ckpt", str(good), "--top-k", "0", "a [MASK]"], "argument --top-k: must be an integer in [1, 1000]; got '0'", 2),
        Case("fill_mask:top_k_huge", [*FILL_MASK, "--ckpt", str(good), "--top-k", "99999999", "a [MASK]"], "argument --top-k: must be an integer in [1, 1000]", 2),
        Case("fill_mask:nothing", [*FILL_MASK, "--ckpt", str(good)], "nothing to fill", 2, stdin=b"\n"),
        Case("fill_mask:code_running", [*FILL_MASK, "--ckpt", str(root / "evil_arch.ckpt"), "a [MASK]"], "arch._target_='torch.load' names code", 2),
        # -- attnlab-generate -----------------------------------------------------------------------------
        Case("generate:ckpt_missing", [*GENERATE, "--ckpt", str(root / "nope.ckpt"), "once"], "attnlab-generate: no checkpoint at", 2),
        Case("generate:not_lm", [*GENERATE, "--ckpt", str(good), "once"], "holds a translation model, not a language model (task=lm)", 2),
        Case("generate:bad_temperature", [*GENERATE, "--ckpt", str(good), "--temperature", "-1", "once"], "argument --temperature: must be a number in [0, 100]; got '-1'", 2),
        Case("generate:temperature_nan", [*GENERATE, "--ckpt", str(good), "--temperature", "nan", "once"], "argument --temperature: must be a number in [0, 100]; got 'nan'", 2),
        Case("generate:temperature_tiny", [*GENERATE, "--ckpt", str(good), "--temperature", "1e-30", "once"], "argument --temperature: must be 0 (greedy) or a number in [0.01, 100]", 2),
        Case("generate:bad_top_p", [*GENERATE, "--ckpt", str(good), "--top-p", "2", "once"], "argument --top-p: must be a number in (0, 1]; got '2'", 2),
        Case("generate:top_p_nan", [*GENERATE, "--ckpt", str(good), "--top-p", "nan", "once"], "argument --top-p: must be a number in (0, 1]; got 'nan'", 2),
        Case("generate:top_k_0", [*GENERATE, "--ckpt", str(good), "--top-k", "0", "once"], "argument --top-k: must be an integer >= 1; got '0'", 2),
        Case("generate:tokens_0", [*GENERATE, "--ckpt", str(good), "--max-new-tokens", "0", "once"], "argument --max-new-tokens: must be an integer in [1, 100000]", 2),
        Case("generate:tokens_huge", [*GENERATE, "--ckpt", str(good), "--max-new-tokens", "1000000000", "once"], "argument --max-new-tokens: must be an integer in [1, 100000]", 2),
        Case("generate:seed_negative", [*GENERATE, "--ckpt", str(good), "--seed", "-1", "once"], "argument --seed: must be an integer in [0, 4294967295]", 2),
        Case("generate:seed_huge", [*GENERATE, "--ckpt", str(good), "--seed", "18446744073709551616", "once"], "argument --seed: must be an integer in [0, 4294967295]", 2),
        Case("generate:nothing", [*GENERATE, "--ckpt", str(good)], "nothing to continue", 2, stdin=b""),
        Case("generate:code_running", [*GENERATE, "--ckpt", str(root / "evil_arch.ckpt"), "once"], "arch._target_='torch.load' names code", 2),
        # -- attnlab-average ---------------------------------------------------------------------------
        Case("average:one", [*AVERAGE, "--out", str(root / "avg.ckpt"), str(good)], "averaging needs at least two checkpoints, got 1", 2),
        Case("average:code_running", [*AVERAGE, "--out", str(root / "avg.ckpt"), str(good), str(root / "evil_arch.ckpt")], "arch._target_='torch.load' names code", 2),
        Case("average:too_few", [*AVERAGE, "--out", str(root / "avg.ckpt"), "--dir", str(root / "empty_sweep"), "--last", "2"], "holds 0 epoch checkpoints, fewer than --last 2", 2),
        Case("average:last_0", [*AVERAGE, "--out", str(root / "avg.ckpt"), "--dir", str(root / "empty_sweep"), "--last", "0"], "argument --last: must be an integer in [2, 1000]", 2),
        Case("average:dir_missing", [*AVERAGE, "--out", str(root / "avg.ckpt"), "--dir", str(root / "nowhere")], f"argument --dir: no such directory: {root / 'nowhere'}", 2),
        Case("average:out_is_dir", [*AVERAGE, "--out", str(root), str(good), str(good)], f"argument --out: '{root}' is a directory; give a file name", 2),
        Case("average:out_missing_dir", [*AVERAGE, "--out", str(root / "no" / "avg.ckpt"), str(good), str(good)], f"the directory {root / 'no'} does not exist", 2),
        Case("average:out_is_input", [*AVERAGE, "--out", str(root / "copy.ckpt"), str(root / "copy.ckpt"), str(good)], "is one of this command's inputs; write elsewhere", 2,
             check=unchanged(root / "copy.ckpt")),
        Case("average:out_exists", [*AVERAGE, "--out", str(root / "existing.ckpt"), str(good), str(good)], "exists; pass --force to overwrite it", 2, check=unchanged(root / "existing.ckpt")),
        Case("average:state_dict_not_a_mapping", [*AVERAGE, "--out", str(root / "avg2.ckpt"), str(good), str(root / "state_list.ckpt")], "state_dict must be a mapping", 2),
        # -- attnlab-report ----------------------------------------------------------------------------
        Case("report:missing_dir", [*REPORT, str(root / "nowhere")], f"sweep directory not found: {root / 'nowhere'}", 2),
        Case("report:no_jobs", [*REPORT, str(root / "empty_sweep")], "no jobs found", 1),
        Case("report:corrupt_metrics", [*REPORT, str(root / "sweep")], "", 0, check=report_lists_it),
        Case("report:misshapen_metrics", [*REPORT, str(root / "misshapen")], "", 0, check=report_lists_misshapen),
        Case("report:min_bucket_0", [*REPORT, str(root / "sweep"), "--min-bucket", "0"], "argument --min-bucket: must be an integer in [1, 1000000]", 2),
        Case("report:out_is_file", [*REPORT, str(root / "sweep"), "--out", str(root / "bad.tsv")], f"argument --out: {root / 'bad.tsv'} is a file, not a directory", 2),
        Case("report:baseline_not_a_configuration", [*REPORT, str(root / "okay_sweep"), "--baseline", "rnn / nothing / none"], "--baseline 'rnn / nothing / none' names no configuration of this sweep; it has: transformer / dot / learned; transformer / multihead / learned", 2),
        Case("report:resamples_10", [*REPORT, str(root / "okay_sweep"), "--resamples", "10"], "argument --resamples: must be an integer in [100, 100000]", 2),
        Case("report:run_before_examples", [*REPORT, str(root / "mixed_sweep"), "--baseline", "transformer/multihead/learned"], "", 0, check=report_says_untested),
        # -- attnlab-compare ---------------------------------------------------------------------------
        Case("compare:other_test_set", [*COMPARE, str(root / "run_a"), str(root / "run_other_examples")], "not the same test examples, so no paired test: ", 2, check=names_line_5),
        Case("compare:no_per_example_outputs", [*COMPARE, str(root / "run_a"), str(root / "run_before_examples")], "has no per-example outputs for its test split", 2),
        Case("compare:corrupt_examples", [*COMPARE, str(root / "run_a"), str(root / "run_corrupt_examples")], "test_examples.jsonl:3: not a JSON object", 2),
        Case("compare:missing_dir", [*COMPARE, str(root / "run_a"), str(root / "nowhere")], f"{root / 'nowhere'}: no such directory", 2),
        Case("compare:not_a_run", [*COMPARE, str(root / "run_a"), str(root / "empty_sweep")], "neither a run directory (no metrics.json) nor a sweep with a finished run", 2),
        Case("compare:unknown_metric", [*COMPARE, str(root / "run_a"), str(root / "okay_sweep" / "1"), "--metric", "test/acc"], "--metric test/acc: not a metric both sides' test examples recompute (they have: test/bleu, test/chrf, test/exact_match, test/loss, test/ppl)", 2),
        Case("compare:seed_0", [*COMPARE, str(root / "run_a"), str(root / "okay_sweep" / "1"), "--seed", "0"], "argument --seed: must be an integer in [1, 2147483647]", 2),
        Case("compare:both_sweeps_of_many", [*COMPARE, str(root / "okay_sweep"), str(root / "okay_sweep")], "both sides hold several configurations (2 and 2)", 2),
        # -- attnlab-baseline ------------------------------------------------------------------------
        Case("baseline:not_a_job", [*SVM, str(root / "empty_sweep"), "--out", str(root / "svm")], f"{root / 'empty_sweep'}: no .hydra/config.yaml (not a job directory)", 2),
        Case("baseline:no_data_config", [*SVM, str(root / "okay_sweep" / "0"), "--out", str(root / "svm")], "has no data config: not a job's composed config", 2),
        Case("baseline:train_size_0", [*SVM, str(root / "okay_sweep" / "0"), "--out", str(root / "svm"), "--train-size", "0"], "argument --train-size: must be an integer in [1, 1000000000]", 2),
        Case("baseline:out_is_file", [*SVM, str(root / "okay_sweep" / "0"), "--out", str(root / "bad.tsv")], f"argument --out: {root / 'bad.tsv'} is a file, not a directory", 2),
        Case("report:out_missing_parent", [*REPORT, str(root / "sweep"), "--out", str(root / "no" / "where")], f"the directory {root / 'no'} does not exist", 2),
        # -- attnlab-dashboard -------------------------------------------------------------------------
        Case("dashboard:dry_run_extension", [*DASHBOARD, *WANDB_GROUP, "--dry-run", str(root / "spec.txt")], "argument --dry-run: " + str(root / "spec.txt") + ": the file name must end in .json", 2),
        Case("dashboard:dry_run_is_dir", [*DASHBOARD, *WANDB_GROUP, "--dry-run", str(root)], f"argument --dry-run: '{root}' is a directory; give a file name", 2),
        Case("dashboard:dry_run_missing_dir", [*DASHBOARD, *WANDB_GROUP, "--dry-run", str(root / "no" / "d.json")], f"the directory {root / 'no'} does not exist", 2),
        Case("dashboard:unknown_task", [*DASHBOARD, *WANDB_GROUP, "--task", "nosuch", "--dry-run", str(root / "d.json")], "--task: task 'nosuch' is not an attnlab component; known: classification, lm, mlm", 2,
             check=no_directory(root / "d.json")),
        Case("dashboard:bad_kind", [*DASHBOARD, *WANDB_GROUP, "--kind", "page", "--dry-run", str(root / "d.json")], "argument --kind: invalid choice: 'page'", 2),
        Case("dashboard:empty_group", [*DASHBOARD, "--entity", "e", "--project", "p", "--group", " ", "--dry-run", str(root / "d.json")], "argument --group: must not be empty", 2),
        Case("dashboard:no_group", [*DASHBOARD, "--entity", "e", "--project", "p"], "the following arguments are required: --group", 2),
        # -- the Bible exporter ------------------------------------------------------------------------
        Case("bible:no_modules", [*BIBLE, "--out", str(root / "b.tsv"), "--sword-path", str(root)], "apt-get install -y sword-text-sparv sword-text-web sword-text-kjv", 1),
        Case("bible:out_is_dir", [*BIBLE, "--out", str(root)], f"argument --out: '{root}' is a directory", 2),
        Case("bible:out_missing_dir", [*BIBLE, "--out", str(root / "no" / "b.tsv")], f"the directory {root / 'no'} does not exist", 2),
        Case("bible:out_extension", [*BIBLE, "--out", str(root / "b.csv")], "the file name must end in .tsv", 2),
        Case("bible:bad_overlap", [*BIBLE, "--out", str(root / "b.tsv"), "--min-strongs-overlap", "3"], "argument --min-strongs-overlap: must be a number in (0, 1]; got '3'", 2),
        Case("bible:ratio_nan", [*BIBLE, "--out", str(root / "b.tsv"), "--max-length-ratio", "nan"], "argument --max-length-ratio: must be a number in [1, 100]; got 'nan'", 2),
    ]


def in_process(case: Case) -> bool:
    return not case.process


@functools.lru_cache(maxsize=None)
def hydra_main(script: str) -> Callable[[], Any]:
    """The @hydra.main function of train.py or eval.py: it reads its arguments from sys.argv."""
    spec = importlib.util.spec_from_file_location(f"entry_{Path(script).stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # Hydra finds conf/ beside the file of a __main__ task function, as when the script is run
    module.main.__wrapped__.__module__ = "__main__"
    return module.main


def run_case(case: Case) -> Case:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_ERROR_REPORTING": "false"}
    proc = subprocess.run(case.command, input=case.stdin or b"", capture_output=True, timeout=600, env=env, cwd=ROOT)
    case.proc = subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"))
    return case


def run_case_in_process(case: Case) -> Case:
    """The command in this process: a tool's ``main(argv)``, or train.py's / eval.py's Hydra main
    with ``sys.argv`` set (Hydra's own error report prints no traceback and exits 1)."""
    if case.command[0] == PY:
        script, argv = case.command[1], case.command[2:]
        case.proc = run_in_process(hydra_main(script), [script, *argv], case.stdin)
    else:
        case.proc = run_tool(case.command[0][:-1], case.command[1:], case.stdin)
    return case


@pytest.fixture(scope="module")
def results(ws):
    table = cases(ws)
    processes = [case for case in table if not in_process(case)]
    with ThreadPoolExecutor(max_workers=2) as pool:  # the machine has two cores
        running = pool.map(run_case, processes)  # beside the in-process cases
        done = [run_case_in_process(case) for case in table if in_process(case)]
        done += list(running)
    return {case.name: case for case in done}


def case_names():
    # the names without building the workspace: the table with placeholder paths
    placeholder = {"root": Path("/r"), "good": Path("/r/g"), "data": Path("/r/d"), "marker": Path("/r/m"), "rnn": Path("/r/rnn")}
    return [case.name for case in cases(placeholder)]


@pytest.mark.parametrize("name", case_names())
def test_bad_input_gets_one_clear_line(results, ws, name):
    case = results[name]
    proc = case.proc
    assert proc.returncode == case.code, f"exit {proc.returncode}, stderr: {proc.stderr[-2000:]}"
    assert case.fragment in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    if case.code != 0:
        # the message is one line: the last line of stderr, and it holds the fragment
        assert case.fragment in proc.stderr.strip().splitlines()[-1]
    if case.check:
        case.check(proc)
    assert not ws["marker"].exists(), "a checkpoint ran code"


def test_the_chain_is_live_so_its_refusal_means_something(tmp_path):
    """The control: given to hydra.utils.instantiate, the chain does run the payload."""
    from hydra.utils import instantiate

    marker = tmp_path / "PWNED"
    instantiate(code_running_chain(marker))
    assert marker.exists()


def test_no_api_runs_a_checkpoints_code(ws):
    from attnlab.errors import AttnlabError, CheckpointError
    from attnlab.tasks import TranslationTask, Translator, load_task, read_checkpoint

    root = ws["root"]
    for name in ("evil_arch.ckpt", "evil_data.ckpt"):
        path = root / name
        with pytest.raises(CheckpointError, match=rf"{path}: \w+\._target_='torch.load' names code"):
            read_checkpoint(path)
        with pytest.raises(CheckpointError):
            load_task(path)
        with pytest.raises(CheckpointError):
            Translator.from_checkpoint(path)
        with pytest.raises(AttnlabError, match="names code, not an attnlab component"):
            TranslationTask.load_from_checkpoint(path, weights_only=True)  # Lightning's own loader
    assert not ws["marker"].exists()


def test_a_rejected_configuration_leaves_a_run_directory_that_says_why(results, ws):
    """Every run directory the bad train.py commands left holds a metrics.json with the error."""
    runs = [p for p in (ws["root"] / "logs" / "train" / "runs").iterdir()]
    assert len(runs) >= 15
    for run in runs:
        result = json.loads((run / "metrics.json").read_text())
        assert result["status"] == "failed" and result["error"], run


def test_the_bible_tsv_respects_the_umask(tmp_path):
    from attnlab.data.corpus_cache import atomic_writer

    old = os.umask(0o022)
    try:
        with atomic_writer(tmp_path / "out.tsv") as f:
            f.write("x\n")
    finally:
        os.umask(old)
    assert (tmp_path / "out.tsv").stat().st_mode & 0o777 == 0o644
