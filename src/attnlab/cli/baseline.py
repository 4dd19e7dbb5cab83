"""A classical reference for text classification reports: TF-IDF over word 1-2-grams and a linear
SVM (scikit-learn), trained on exactly the training examples a sweep's jobs saw."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from omegaconf import OmegaConf

from attnlab import arguments as args_
from attnlab import components
from attnlab.errors import AttnlabError
from attnlab.data.loading import load_data

NAME = "tf-idf (word 1-2-grams) + linear SVM"


def sweep_data_spec(job_dir: Path) -> dict:
    """The data spec a job trained on, from its composed config."""
    import attnlab.run.resolvers  # noqa: F401  (the config's own resolvers)

    cfg = OmegaConf.load(job_dir / ".hydra" / "config.yaml")
    if cfg.get("data") is None:
        raise ValueError(f"{job_dir / '.hydra' / 'config.yaml'} has no data config: not a job's composed config")
    return components.spec_from_config(OmegaConf.to_container(cfg.data, resolve=True), "data")


def tfidf_svm_predictions(data_spec: dict, train_size: Optional[int]) -> Tuple[List[Dict[str, Any]], float]:
    """The test split's per-example rows (the classification task's fields, so a paired test can
    set them against a trained encoder's) and the accuracy, with ``train_size`` training examples
    (None: all), drawn as the datamodule draws them."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    datamodule = load_data(data_spec, "fit", train_size=train_size, labels_per_class=None, tokenizer="word")
    train, test = datamodule.splits["train"].examples, datamodule.splits["test"].examples
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1), LinearSVC(C=1.0))
    model.fit([e.text for e in train], [e.label for e in train])
    predicted = model.predict([e.text for e in test])
    labels = datamodule.labels
    rows = [
        {"id": e.index, "text": e.text, "label": labels[e.label], "prediction": labels[int(p)], "correct": int(int(p) == e.label), "total": 1}
        for p, e in zip(predicted, test)
    ]
    return rows, float(sum(r["correct"] for r in rows) / len(rows))


def tfidf_svm_accuracy(data_spec: dict, train_size: Optional[int]) -> float:
    return tfidf_svm_predictions(data_spec, train_size)[1]


def baseline_curve(job_dir: Path, sizes: List[Optional[int]]) -> Dict[Optional[int], float]:
    spec = sweep_data_spec(job_dir)
    return {size: tfidf_svm_accuracy(spec, size) for size in sizes}


def write_run(job_dir: Path, out_dir: Path, train_size: Optional[int]) -> Path:
    """The baseline as a run directory (metrics.json and test_examples.jsonl) that attnlab-compare
    and the report can test against the job's own runs."""
    from attnlab.run.results import RunResult
    from attnlab.stats import examples, measures

    rows, accuracy = tfidf_svm_predictions(sweep_data_spec(job_dir), train_size)
    described = examples.describe("test", rows, ("text", "label"), {"test/acc": "accuracy", "test/macro_f1": "macro_f1"})
    out_dir.mkdir(parents=True, exist_ok=True)
    examples.write(out_dir, "test", rows)
    result = RunResult(
        status="ok", kind="eval", task="classification", run_name=NAME,
        choices={"arch": "tfidf", "attention": "none", "pos_enc": "none", "data": None},
        metrics={"test/acc": accuracy, "test/macro_f1": measures.score("macro_f1", rows)},
        extras={"examples": {"test": described}, "train_size": train_size if train_size is not None else "all"},
        report_columns=[["test acc", "test/acc", True], ["test macro-F1", "test/macro_f1", True]],
        output_dir=str(out_dir),
    )
    return result.write(out_dir)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="attnlab-baseline", description="TF-IDF + linear SVM on the data a classification job trained on, written as a run directory for attnlab-compare.")
    parser.add_argument("job_dir", type=Path, help="a classification job's directory (its .hydra/config.yaml names the data)")
    parser.add_argument("--out", type=args_.output_dir, required=True, help="the run directory to write")
    parser.add_argument("--train-size", type=args_.integer(1, 10**9), help="training examples (default: all)")
    args = parser.parse_args(argv)
    if not (args.job_dir / ".hydra" / "config.yaml").is_file():
        parser.error(f"{args.job_dir}: no .hydra/config.yaml (not a job directory)")
    try:
        path = write_run(args.job_dir, args.out, args.train_size)
    except (AttnlabError, ValueError) as exc:
        print(f"attnlab-baseline: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path} and {args.out / examples_file()}")
    return 0


def examples_file() -> str:
    from attnlab.stats.examples import file_name

    return file_name("test")


if __name__ == "__main__":
    sys.exit(main())
