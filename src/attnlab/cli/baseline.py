"""A classical reference for text classification reports: TF-IDF over word 1-2-grams and a linear
SVM (scikit-learn), trained on exactly the training examples a sweep's jobs saw."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

from omegaconf import OmegaConf

from attnlab import components
from attnlab.data.loading import load_data

NAME = "tf-idf (word 1-2-grams) + linear SVM"


def sweep_data_spec(job_dir: Path) -> dict:
    """The data spec a job trained on, from its composed config."""
    import attnlab.run.resolvers  # noqa: F401  (the config's own resolvers)

    cfg = OmegaConf.load(job_dir / ".hydra" / "config.yaml")
    return components.spec_from_config(OmegaConf.to_container(cfg.data, resolve=True), "data")


def tfidf_svm_accuracy(data_spec: dict, train_size: Optional[int]) -> float:
    """Test accuracy with ``train_size`` training examples (None: all), drawn as the datamodule draws them."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    datamodule = load_data(data_spec, "fit", train_size=train_size, labels_per_class=None, tokenizer="word")
    train, test = datamodule.splits["train"].examples, datamodule.splits["test"].examples
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1), LinearSVC(C=1.0))
    model.fit([e.text for e in train], [e.label for e in train])
    predicted = model.predict([e.text for e in test])
    return float(sum(int(p) == e.label for p, e in zip(predicted, test)) / len(test))


def baseline_curve(job_dir: Path, sizes: List[Optional[int]]) -> Dict[Optional[int], float]:
    spec = sweep_data_spec(job_dir)
    return {size: tfidf_svm_accuracy(spec, size) for size in sizes}
