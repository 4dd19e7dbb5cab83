"""Text classification: an encoder of any architecture (a transformer encoder with any
self-attention and positional encoding, or a bidirectional RNN) and a pooling head.

``pooling="attention"`` is the lesson's attention reading a sentence: a learned query attends over
the encoder's states with the configured attention type (for an RNN with ``attention=none``, the
final state). ``cls`` takes the first position (BERT's [CLS]), ``mean`` averages.

Transfer learning: ``init_from`` starts from the encoder of an attnlab masked-LM checkpoint, and
``pretrained`` from a Hugging Face BERT (``minilm``: the packaged all-MiniLM-L6-v2); either way the
data uses that model's tokenizer and vocabulary, and the head is new. ``freeze_encoder`` trains
the head alone; ``encoder_lr_scale`` gives the encoder a smaller learning rate.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score

from attnlab import components
from attnlab.data.tokenization import Tokenizer
from attnlab.data.vocab import Vocab
from attnlab.errors import ConfigError
from attnlab.models.base import inference
from attnlab.models.factory import build_classifier
import attnlab.tasks.pretrained as hf_pretrained
from attnlab.tasks.base import AttentionExample, AttentionMap, Evaluation, Heatmap, Task, plain
from attnlab.tasks.checkpoints import read_checkpoint
from attnlab.tasks.shapes import MODEL_KEYS, TEXT_FIELDS, TEXT_SCHEMA


def encoder_source(init_from: Optional[str], pretrained: Optional[str]) -> Optional[Dict[str, Any]]:
    """What a pretrained encoder brings: component specs, vocabulary, specials, tokenizer, weights."""
    if init_from and pretrained:
        raise ConfigError("set task.init_from (an attnlab masked-LM checkpoint) or task.pretrained (a Hugging Face BERT), not both")
    if pretrained:
        source = hf_pretrained.load(pretrained)
        return {**source.specs, "vocab": source.vocab, "specials": source.specials, "tokenizer": source.tokenizer, "weights": source.state_dict, "where": f"task.pretrained={pretrained}"}
    if init_from:
        payload = read_checkpoint(init_from)
        hp = payload["hyper_parameters"]
        if hp.get("task") != "mlm":
            raise ConfigError(f"task.init_from={init_from} holds a {hp.get('task', 'translation')} model; fine-tuning starts from a masked-LM (task=mlm) checkpoint")
        prefix = "model.encoder."
        weights = {k[len(prefix):]: v for k, v in payload["state_dict"].items() if k.startswith(prefix)}
        return {**{k: hp[k] for k in MODEL_KEYS}, "vocab": hp["vocab"], "specials": hp.get("specials"), "tokenizer": hp["tokenizer"], "weights": weights, "where": f"task.init_from={init_from}"}
    return None


class ClassificationTask(Task):
    name = "classification"
    monitor = "val/acc"
    prediction_name = "predictions"
    example_identity = ("text", "label")
    example_measures = {"acc": "accuracy", "macro_f1": "macro_f1", "loss": "mean_nll"}
    report_columns = [("val acc", "val/acc", True), ("test acc", "test/acc", True), ("test macro-F1", "test/macro_f1", True)]
    data_fields = {**TEXT_FIELDS, "labels": lambda dm: dm.labels}
    checkpoint_keys = ("vocab", "labels", "tokenizer")
    hparam_schema = {
        **TEXT_SCHEMA,
        "labels": {"list": "str"},
        "pooling": "str",
        "classifier_dropout": "number",
        "label_smoothing": "number",
    }
    data_kinds = ("text",)
    figure_keys = ("confusion_matrix", "attention/self/example_0", "attention/pooling/example_0")

    def __init__(
        self,
        arch: Mapping[str, Any],
        attention: Mapping[str, Any],
        pos_enc: Mapping[str, Any],
        vocab: Sequence[str],
        labels: Sequence[str],
        tokenizer: Any = "word",
        specials: Optional[Mapping[str, str]] = None,
        pooling: str = "attention",
        classifier_dropout: float = 0.1,
        label_smoothing: float = 0.0,
        data: Optional[Mapping[str, Any]] = None,
        choices: Optional[Mapping[str, str]] = None,
        init_from: Optional[str] = None,
        pretrained: Optional[str] = None,
        freeze_encoder: bool = False,
        encoder_lr_scale: float = 1.0,
        optimizer: Optional[Callable] = None,
        scheduler: Optional[Callable] = None,
        monitor: Optional[str] = None,
        monitor_mode: Optional[str] = None,
        decay: str = "matrices",
        compile: bool = False,
    ):
        super().__init__(optimizer, scheduler, monitor, monitor_mode, decay)
        source = encoder_source(init_from, pretrained)
        specs = {"arch": arch, "attention": attention, "pos_enc": pos_enc}
        if source is not None:
            chosen = {k: components.component_name(components.check_spec(plain(specs[k]), k, k)) for k in MODEL_KEYS}
            wanted = {k: components.component_name(source[k]) for k in MODEL_KEYS}
            if chosen != wanted:
                differ = ", ".join(f"{k}={wanted[k]}" for k in MODEL_KEYS if chosen[k] != wanted[k])
                raise ConfigError(f"{source['where']} is a model with {differ}: choose the same ({', '.join(f'{k}={v}' for k, v in chosen.items())} now)")
            specs = {k: source[k] for k in MODEL_KEYS}  # the pretrained encoder's own settings
        if not labels:
            raise ConfigError("task=classification needs labelled data: the training split has no labels")
        self.save_task_hyperparameters(
            specs,
            data,
            choices,
            vocab=list(vocab),
            specials=plain(specials),
            labels=list(labels),
            tokenizer=plain(tokenizer),
            pooling=pooling,
            classifier_dropout=classifier_dropout,
            label_smoothing=label_smoothing,
        )
        self.vocab = Vocab(self.hparams.vocab, self.hparams.specials)
        self.tokenizer = Tokenizer.from_spec(self.hparams.tokenizer)
        hp = self.hparams
        self.model = build_classifier(hp.arch, hp.attention, hp.pos_enc, len(self.vocab), len(hp.labels), self.vocab.pad_id, pooling, classifier_dropout)
        if source is not None:
            self.model.encoder.load_state_dict(source["weights"])
        if freeze_encoder:
            self.model.encoder.requires_grad_(False)
        if compile:
            self.model.compile()
        self.encoder_lr_scale = encoder_lr_scale
        classes = len(hp.labels)
        self.loss_metric = MeanMetric()
        self.accuracy = MulticlassAccuracy(classes, average="micro")
        self.macro_f1 = MulticlassF1Score(classes, average="macro")
        self.class_f1 = MulticlassF1Score(classes, average=None)
        self.confusion = MulticlassConfusionMatrix(classes)
        self._rows: List[tuple] = []

    # -- what the pipeline asks -------------------------------------------------------------------
    @classmethod
    def pretrained_data(cls, task_cfg: Mapping[str, Any]) -> Dict[str, Any]:
        """A pretrained encoder reads the data its own way: its tokenizer and vocabulary."""
        source = encoder_source(task_cfg.get("init_from"), task_cfg.get("pretrained"))
        return {} if source is None else {"tokenizer": source["tokenizer"], "vocab": source["vocab"], "specials": source["specials"]}

    def optimizer_parameters(self):
        head = [p for name, p in self.named_parameters() if not name.startswith("model.encoder.") and p.requires_grad]
        encoder = [p for p in self.model.encoder.parameters() if p.requires_grad]
        if self.encoder_lr_scale == 1.0 or not encoder:
            return self.decay_groups(head + encoder)
        lr = getattr(self.optimizer_factory, "keywords", {}).get("lr")
        if lr is None:
            raise ConfigError("task.encoder_lr_scale needs task.optimizer.lr")
        return self.decay_groups(encoder, lr=lr * self.encoder_lr_scale) + self.decay_groups(head)

    # -- training -----------------------------------------------------------------------------------
    def loss(self, batch: Dict[str, Any]) -> torch.Tensor:
        logits = self.model(batch["tokens"])  # (B, C)
        return F.cross_entropy(logits, batch["labels"], label_smoothing=self.hparams.label_smoothing)

    def batch_tokens(self, batch: Dict[str, Any]) -> int:
        return int(batch["tokens"].ne(self.vocab.pad_id).sum())

    # -- evaluation -----------------------------------------------------------------------------------
    def reset_evaluation(self) -> None:
        for metric in (self.loss_metric, self.accuracy, self.macro_f1, self.class_f1, self.confusion):
            metric.reset()
        self._rows = []

    def evaluation_step(self, batch: Dict[str, Any], split: str) -> None:
        logits = self.model(batch["tokens"]).float()  # (B, C)
        labels = batch["labels"]
        nll = F.cross_entropy(logits, labels, reduction="none")  # (B,)
        self.loss_metric.update(nll.mean(), weight=labels.numel())
        predicted = logits.argmax(dim=-1)
        for metric in (self.accuracy, self.macro_f1, self.class_f1, self.confusion):
            metric.update(predicted, labels)
        for i, index in enumerate(batch["index"].tolist()):
            self._rows.append((index, batch["text"][i], int(predicted[i]), int(labels[i]), float(nll[i])))

    def evaluation_end(self, split: str) -> Evaluation:
        rows = sorted(self.gather_objects(self._rows))
        labels = self.hparams.labels
        metrics = {
            f"{split}/loss": float(self.loss_metric.compute()),
            f"{split}/acc": float(self.accuracy.compute()),
            f"{split}/macro_f1": float(self.macro_f1.compute()),
        }
        metrics.update({f"{split}/f1/{label}": float(v) for label, v in zip(labels, self.class_f1.compute().tolist())})
        confusion = self.confusion.compute().cpu().numpy()  # (true, predicted)
        return Evaluation(
            split=split,
            metrics=metrics,
            predictions=[labels[p] for _, _, p, _, _ in rows],
            inputs=[text for _, text, _, _, _ in rows],
            examples=[{"text": text, "prediction": labels[p], "label": labels[t]} for _, text, p, t, _ in rows],
            records=[
                {"id": i, "text": text, "label": labels[t], "prediction": labels[p], "correct": int(p == t), "total": 1, "nll": nll}
                for i, text, p, t, nll in rows
            ],
            heatmaps={"confusion_matrix": Heatmap(confusion, list(labels), list(labels), f"{split} confusion matrix (rows: true, columns: predicted)", "true", "predicted")},
        )

    # -- inference ------------------------------------------------------------------------------------
    def encode(self, texts: Sequence[str], max_len: int = 512) -> torch.Tensor:
        rows = [[self.vocab.bos_id, *self.vocab.encode(self.tokenizer.tokenize(t))[: max_len - 2], self.vocab.eos_id] for t in texts]
        out = torch.full((len(rows), max(map(len, rows))), self.vocab.pad_id, dtype=torch.long, device=self.device)
        for i, row in enumerate(rows):
            out[i, : len(row)] = torch.tensor(row)
        return out

    def predict(self, texts: Sequence[str]) -> List[Dict[str, float]]:
        """Per text, every label's probability."""
        with inference(self):
            probs = torch.softmax(self.model(self.encode(texts)).float(), dim=-1).tolist()
        return [dict(zip(self.hparams.labels, row)) for row in probs]

    def attention_examples(self, inputs: Sequence[str]) -> List[AttentionExample]:
        """Which words each word attends to (every layer and head of self-attention; the lesson's
        coreference picture), and which words the pooling query read."""
        with inference(self):
            tokens = self.encode(inputs, max_len=self.model.encoder.pos.max_len or 512)
            logits, weights = self.model.classify(tokens, need_weights=True)
        examples = []
        for i, text in enumerate(inputs):
            ids = [t for t in tokens[i].tolist() if t != self.vocab.pad_id]
            words = [self.vocab.tokens[t] for t in ids]
            n = len(ids)
            maps = {}
            if "self" in weights:
                maps["self"] = AttentionMap([w[i, :, :n, :n].float().cpu().numpy() for w in weights["self"]], words, words)
            if "pooling" in weights:
                maps["pooling"] = AttentionMap([weights["pooling"][0][i, :, :, :n].float().cpu().numpy()], ["[query]"], words)
            examples.append(AttentionExample(f"→ {self.hparams.labels[int(logits[i].argmax())]}", maps))
        return examples
