"""What the tests share (test modules import only this): the real config tree composed with tiny
budgets, train.py and the CLIs as subprocesses, W&B read back with `wandb leet`, toy models."""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import json
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

import attnlab.run.resolvers  # noqa: F401
from attnlab.attention import AdditiveAttention, DifferentialAttention, DotProductAttention, LatentAttention, LinearAttention, LocalAttention, MultiHeadAttention, NoAttention
from attnlab.models import RNNSeq2Seq, TransformerSeq2Seq
from attnlab.positional import LearnedPositionalEncoding, NoPositionalEncoding, SinusoidalPositionalEncoding

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
BIN = Path(sys.executable).parent
WANDB_CLI = str(BIN / "wandb")

# the same numerics on every machine (trainer.precision=auto, the default, depends on the CPU)
FP32 = "trainer.precision=32-true"

# small enough to train in seconds, large enough to exercise every code path
TINY = [
    "logger=none",
    "data.corpus.train_size=96",
    "data.corpus.val_size=24",
    "data.corpus.test_size=24",
    "data.batch_size=32",
    "data.eval_batch_size=24",
    "trainer.max_epochs=1",
    "++trainer.enable_progress_bar=false",
    "++trainer.enable_model_summary=false",
    "~callbacks.progress_bar",
    "task.max_len_b=4",
    "task.max_len_a=1.0",
    "data.max_tokens=null",  # sentence batches: the tests count steps by data.batch_size
    "interval_resamples=200",  # the run's own intervals: every tiny run pays for them
    FP32,
]
TINY_ARCH = {
    "transformer": ["arch.d_model=32", "arch.d_ff=64", "arch.num_encoder_layers=1", "arch.num_decoder_layers=1"],
    "rnn": ["arch.d_model=32", "arch.emb_dim=16"],
}


def compose_config(tmp_path: Path, overrides: Iterable[str] = (), data_dir: Path | None = None, tiny: bool = True, config_name: str = "train") -> DictConfig:
    """The config ``python train.py <overrides>`` (``config_name="eval"``: ``eval.py``) would run,
    writing under ``tmp_path``."""
    overrides = list(overrides)
    arch = next((o.split("=", 1)[1] for o in overrides if o.startswith("arch=")), "transformer")
    base = [] if config_name == "eval" else TINY + TINY_ARCH.get(arch, []) if tiny else [FP32]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name, overrides=base + overrides, return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]  # a real job's config has none; ${hydra:...} reads HydraConfig instead
        cfg.paths.output_dir = str(tmp_path / "out")
        cfg.paths.log_dir = str(tmp_path / "logs")
        if data_dir is not None:
            cfg.paths.data_dir = str(data_dir)
    return cfg


def run_cli(args: Iterable[str], cwd: Path | None = None, env_extra: dict | None = None, unset: Iterable[str] = (), timeout: int = 600, input: str | None = None) -> subprocess.CompletedProcess:
    """A command as a user runs it, W&B offline."""
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_ERROR_REPORTING": "false", "WANDB_SILENT": "true", **(env_extra or {})}
    for key in unset:
        env.pop(key, None)
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, input=input)


def run_in_process(call: Callable[[], Any], argv: Sequence[str], input: bytes | str | None = None) -> subprocess.CompletedProcess:
    """``call()`` as a command would run it, in this process: ``sys.argv``, stdin, stdout and
    stderr its own; the exit code it returns or exits with. An exception it lets out is a crash,
    written to stderr as the traceback (so a test that forbids tracebacks sees it)."""
    data = input.encode() if isinstance(input, str) else (input or b"")
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin, sys.argv
    sys.stdin, sys.argv = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"), [str(a) for a in argv]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = call()
                code = code if isinstance(code, int) else 0
            except SystemExit as exc:  # argparse's refusals, sys.exit("message")
                if isinstance(exc.code, str):
                    print(exc.code, file=sys.stderr)
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except Exception:
                traceback.print_exc()
                code = 1
    finally:
        sys.stdin, sys.argv = saved
    return subprocess.CompletedProcess(list(argv), code, out.getvalue(), err.getvalue())


def run_tool(module: str, args: Iterable[Any], input: bytes | str | None = None) -> subprocess.CompletedProcess:
    """A console tool (``attnlab.cli.translate``) through its ``main(argv)``, in this process: what
    its script does, without the seconds of starting Python and importing torch again."""
    argv = [str(a) for a in args]
    main = importlib.import_module(module).main
    return run_in_process(lambda: main(argv), [module, *argv], input)


def run_train_cli(args: Iterable[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return run_cli([sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, **kwargs)


def run_eval_cli(args: Iterable[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return run_cli([sys.executable, str(ROOT / "eval.py"), *args], cwd=cwd, **kwargs)


def leet(run_dir: Path, summary: bool = True) -> dict | str:
    """An offline W&B run read back by ``wandb leet inspect``: the summary as a dict, or (with
    ``summary=False``) every record as JSON lines."""
    args = [WANDB_CLI, "leet", "inspect", "--json", str(run_dir)]
    if summary:
        args.insert(3, "--summary")
    out = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout) if summary else out.stdout


def only_run_dir(logs: Path, task_name: str = "train") -> Path:
    runs = list((logs / task_name / "runs").iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def read_metrics(directory: Path) -> dict:
    return json.loads((directory / "metrics.json").read_text())


class KillAtStep:
    """A Lightning callback for tests: SIGKILL this process after training step ``step``
    (before that step's checkpoint is written), as a crash or a pre-empted job would."""

    def __new__(cls, step: int):
        import lightning as L

        class _Kill(L.Callback):
            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                if trainer.global_step >= step:
                    os.kill(os.getpid(), 9)

        return _Kill()


class OutputDtypeProbe:
    """A Lightning callback for tests: writes the dtype of the task's output (logits) in its first
    training step to ``<run dir>/logits_dtype.txt``: what autocast really ran."""

    def __new__(cls):
        import lightning as L

        class _Probe(L.Callback):
            def on_train_start(self, trainer, pl_module):
                def record(module, args, output):
                    Path(trainer.default_root_dir, "logits_dtype.txt").write_text(str(output.dtype))
                    self.handle.remove()

                self.handle = pl_module.register_forward_hook(record)

        return _Probe()


# -- toy encoder-decoders for component tests -------------------------------------------------------
V, PAD, BOS, EOS = 24, 0, 2, 3

ATTENTION = {
    "additive": functools.partial(AdditiveAttention, d_attn=16),
    "dot": functools.partial(DotProductAttention, score="general"),
    "multihead": functools.partial(MultiHeadAttention, num_heads=4),
    "none": NoAttention,
    "local": functools.partial(LocalAttention, num_heads=4, window=3),
    "linear": functools.partial(LinearAttention, num_heads=4),
    "mla": functools.partial(LatentAttention, num_heads=4, kv_latent_dim=8),
    "differential": functools.partial(DifferentialAttention, num_heads=2),
}
POSITIONAL = {
    "none": NoPositionalEncoding,
    "learned": functools.partial(LearnedPositionalEncoding, max_len=32),
    "sinusoidal": SinusoidalPositionalEncoding,
}


def build(arch, attn="multihead", pos="sinusoidal", dropout=0.0, **kw):
    if arch == "rnn":
        kw = {"d_model": 32, "emb_dim": 16, **kw}
        return RNNSeq2Seq(V, V, ATTENTION[attn], POSITIONAL[pos], PAD, dropout=dropout, **kw)
    kw = {"d_model": 32, "d_ff": 64, "num_encoder_layers": 2, "num_decoder_layers": 2, **kw}
    return TransformerSeq2Seq(V, V, ATTENTION[attn], POSITIONAL[pos], PAD, dropout=dropout, **kw)


def toy_batch(n=8, seed=0):
    """Reverse-copy task: target = reversed source; ragged lengths with padding."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 8, (n,), generator=g)
    src = torch.full((n, 7), PAD)
    tgt = torch.full((n, 9), PAD)
    for i, length in enumerate(lengths.tolist()):
        seq = torch.randint(4, V, (length,), generator=g)
        src[i, :length] = seq
        tgt[i, : length + 2] = torch.cat([torch.tensor([BOS]), seq.flip(0), torch.tensor([EOS])])
    return src, tgt[:, :-1], tgt[:, 1:]


def assert_examples_reproduce_metrics(result, splits: Sequence[str] = ("val", "test"), rel: float = 1e-6) -> None:
    """Each split's per-example file recomputes every metric metrics.json reports for it."""
    from attnlab.stats import examples, measures

    described = result.extras["examples"]
    assert set(described) == set(splits), described.keys()
    for split in splits:
        example_set = examples.load(Path(result.output_dir), described[split])
        assert example_set.measures, f"no measures for {split}"
        for key, name in example_set.measures.items():
            assert measures.score(name, example_set.rows) == pytest.approx(result.metrics[key], rel=rel, abs=1e-9), key
