"""Reading checkpoints as data.

``torch.load(..., weights_only=True)`` lets only tensors and plain containers out of the file, and
the hyperparameters that rebuild the model name their components only through attnlab's registry
(:mod:`attnlab.components`), so nothing in a checkpoint can choose code to run. A checkpoint that
names anything else is refused with the file and the offending key.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Dict

import torch

from attnlab import components
from attnlab.errors import AttnlabError, CheckpointError
from attnlab.schema import SchemaError, validate
from attnlab.tasks.shapes import MODEL_KEYS

LEGACY_TASK = "translation"  # checkpoints of attnlab 0.1 record no task: they are all translation
LEGACY_ONLY = ("optimizer", "scheduler")


def check_state_dict(state_dict: Any, path: Path) -> None:
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"{path}: state_dict must be a mapping of parameter names to tensors, got {type(state_dict).__name__}")
    for name, value in state_dict.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: state_dict[{name!r}] must be a tensor, got {type(value).__name__}")


def read_checkpoint(path: str | Path) -> Dict[str, Any]:
    """The checkpoint's contents, loaded without unpickling code; its task's keys are checked."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickled code, a truncated file, not a torch file at all
        reason = " ".join(str(exc).split())
        raise CheckpointError(f"{path} cannot be loaded as a weights-only checkpoint: {reason[:300]}") from None
    hparams = payload.get("hyper_parameters") if isinstance(payload, dict) else None
    if not isinstance(hparams, dict) or "state_dict" not in payload:
        raise CheckpointError(f"{path} is not an attnlab checkpoint (no hyper_parameters and state_dict)")
    check_state_dict(payload["state_dict"], path)
    task = hparams.get("task", LEGACY_TASK)
    try:
        task_class = components.lookup("task", task, "task")
    except AttnlabError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    if "task" not in hparams:  # attnlab 0.1 also stored the optimizer and schedule, unused since
        for key in LEGACY_ONLY:
            hparams.pop(key, None)
    missing = [k for k in (*MODEL_KEYS, *task_class.checkpoint_keys) if k not in hparams]
    if missing:
        raise CheckpointError(f"{path} is not an attnlab {task} checkpoint (missing {', '.join(missing)})")
    for key, kind in task_class.component_keys.items():
        if hparams.get(key) is not None:
            try:
                hparams[key] = components.check_spec(hparams[key], key, kind)  # also converts 0.1's form
            except AttnlabError as exc:
                raise CheckpointError(f"{path}: {exc}") from None
    schema = {"task": "str", "choices": {"map": {"optional": "str"}}, **task_class.hparam_schema}
    for key, value in hparams.items():
        if key in task_class.component_keys:
            continue
        if key not in schema:
            raise CheckpointError(f"{path}: hyper_parameters.{key} is not a key attnlab writes for task={task}; refused")
        try:
            validate(value, schema[key], f"hyper_parameters.{key}")
        except SchemaError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
    return payload


def task_class_of(payload: Dict[str, Any]):
    return components.lookup("task", payload["hyper_parameters"].get("task", LEGACY_TASK))


def load_task(path: str | Path, map_location: str | torch.device = "cpu"):
    """The task a checkpoint holds, with its weights, in eval mode (no optimizer: inference only)."""
    payload = read_checkpoint(path)
    task_class = task_class_of(payload)
    accepted = set(inspect.signature(task_class.__init__).parameters)
    hparams = {k: v for k, v in payload["hyper_parameters"].items() if k in accepted}
    try:
        task = task_class(**hparams)
    except AttnlabError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path} does not match this version of attnlab's models: {exc}") from None
    try:
        task.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"{path} holds weights of another model: {first}") from None
    return task.to(map_location).eval()


def check_compatible(payload: Dict[str, Any], task: Any, path: str | Path) -> None:
    """Refuse, in one line, a checkpoint whose task or weights do not fit ``task`` (before
    Lightning would fail deep inside restoring it)."""
    recorded = payload["hyper_parameters"].get("task", LEGACY_TASK)
    if recorded != task.name:
        raise CheckpointError(f"{path} holds a {recorded} model, but this run trains task={task.name}")
    expected, theirs = task.state_dict(), payload["state_dict"]
    problems = [f"{k} missing" for k in expected if k not in theirs]
    problems += [f"{k} unexpected" for k in theirs if k not in expected]
    problems += [
        f"{k} has shape {tuple(theirs[k].shape)}, this model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in theirs and tuple(theirs[k].shape) != tuple(v.shape)
    ]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CheckpointError(f"{path} holds weights of another model than this configuration: {problems[0]}{more}")
