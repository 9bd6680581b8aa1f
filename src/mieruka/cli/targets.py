"""The task a model's output implies and the target each explanation follows (class, reference, objects)."""

from __future__ import annotations

import sys
from pathlib import Path

from .common import blank_output, no_classifier, parse_target
from .parser import TASK_OPTIONS


def task_of(args, loaded, device) -> str:
    """The task named by --task, by the model's family, or read from its output on a blank image."""
    from ..targets.tasks import infer_task

    if args.task != "auto":
        return args.task
    if loaded.task is not None:
        return loaded.task
    if args.reference is not None:
        return "embed"
    output = blank_output(loaded, device)
    task = infer_task(output)
    embedding = no_classifier(loaded, output) if task == "classify" else None
    if embedding is not None:
        raise ValueError(
            f"{embedding}, not class scores; give --num-classes N with --weights holding a trained head, or "
            "--reference PHOTO to explain its similarity to another photo"
        )
    if task == "binary" and not args.quiet:
        print(
            "mieruka: note: the model gives one value per image: explained as a binary classifier's logit "
            "(--task regression to explain a value)",
            file=sys.stderr,
        )
    return task


def task_target(args, task: str, loaded, device):
    """What explain_files gets as targets for this task and these flags."""
    from ..targets.tasks import default_target

    if args.task == "auto":  # a task given by --task was checked with the other flags
        refuse_options_of_other_tasks(args, task)
    if task == "classify":
        return parse_target(args.target, loaded.labels)
    if task == "detect":
        _lower_score_threshold(loaded.model, args.min_score)
    from ..targets import TargetError

    reference = _reference(args.reference, loaded, device) if task == "embed" else None
    try:
        target = default_target(
            task,
            target=args.target,
            top_k=args.top_k,
            threshold=args.threshold,
            direction=args.direction,
            reference=reference,
            min_score=args.min_score,
            max_objects=args.max_objects,
        )
        if reference is not None:  # its length against the model's embedding, before the folder is touched
            target.select(blank_output(loaded, device), None)
    except TargetError as error:
        if reference is None:
            raise
        raise ValueError(f"--reference {args.reference}: {error}") from None
    return target


def refuse_options_of_other_tasks(args, task: str) -> None:
    """A flag given for another task would be ignored: say so instead of explaining something else."""
    from ..targets.tasks import TASKS

    for dest in sorted(args.task_options):
        tasks = TASK_OPTIONS[dest][1]
        if task in tasks:
            continue
        flag = "--" + dest.replace("_", "-")
        others = [t for t in TASKS if t not in tasks]
        applies = (
            " and ".join(tasks) if len(tasks) <= len(others) else "every task but " + " and ".join(others)
        )
        raise ValueError(
            f"{flag} applies to {applies} models; this one is explained as {task}"
            f"{'' if args.task != 'auto' else ' (inferred; --task sets it)'}: leave out {flag}"
        )


def _lower_score_threshold(model, min_score: float) -> None:
    """A torchvision detector drops boxes below its own threshold (0.05) before anyone sees them:
    lower it to --min-score so that a lower --min-score is honoured."""
    for owner in (getattr(model, "roi_heads", None), model):
        if owner is not None and isinstance(getattr(owner, "score_thresh", None), float):
            owner.score_thresh = min(owner.score_thresh, min_score)


def _reference(path: str | None, loaded, device):
    """The reference embedding of --reference: a photo run through the model, or a vector file."""
    import numpy as np
    import torch

    from ..images import load_image, model_input
    from ..layers import evaluating
    from ..models import failed_checksum
    from ..targets import output_tensor

    if path is None:
        raise ValueError("--task embed explains the similarity to a reference: pass --reference IMAGE|VECTOR")
    suffix = Path(path).suffix.lower()
    if suffix in (".npy", ".pt", ".pth"):
        try:
            if suffix == ".npy":
                vector = torch.from_numpy(np.load(path, allow_pickle=False)).float()
            elif damaged := failed_checksum(Path(path)):
                raise ValueError(f"its part {damaged} fails its checksum: damaged or incompletely copied")
            else:
                vector = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise ValueError(
                f"--reference {path}: cannot read a vector ({type(error).__name__}: {error})"
            ) from None
        if not isinstance(vector, torch.Tensor) or (
            vector.dim() != 1 and not (vector.dim() == 2 and len(vector) == 1)
        ):
            shape = tuple(vector.shape) if isinstance(vector, torch.Tensor) else type(vector).__name__
            raise ValueError(f"--reference {path}: expected one embedding vector (D,), got {shape}")
        return vector.reshape(-1)
    try:
        image = load_image(path)
    except ValueError as error:
        raise ValueError(f"--reference {error}") from None
    inputs = model_input(loaded.preprocess, image, f"--reference {path}")[None].to(device)
    with torch.no_grad(), evaluating(loaded.model):
        output = loaded.model(inputs)
    embedding = output_tensor(output)
    if embedding is None:
        embedding = getattr(output, "pooler_output", None)
    if embedding is None:
        raise ValueError(f"--reference {path}: the model's output holds no embedding tensor")
    return embedding.flatten(1)[0].float().cpu()
