"""Targets of heads that are not one softmax over classes: binary, multi-label, regression, embeddings."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .base import Target, TargetError, Targets, describe_output, output_tensor, top_scores
from .classes import class_index


def _head(output: object, what: str) -> torch.Tensor:
    """The (N, D) tensor of a head's output ((N,) is read as (N, 1))."""
    tensor = output_tensor(output)
    if tensor is None or tensor.dim() not in (1, 2):
        raise TargetError(f"{what} needs a model output (N, outputs), got {describe_output(output)}")
    return tensor[:, None] if tensor.dim() == 1 else tensor


class BinaryTarget(Target):
    """A one-logit head (sigmoid): the positive class explains +logit, the negative class -logit.

    `label`: 1 / True / the positive class's name for the positive class, 0 / False / the negative
    name for the negative one, None for the predicted class of each image (positive when logit > 0).
    With two class names, the first is the negative class and the second the positive one. The
    confidence is the sigmoid probability of the explained class. Same sign convention as
    pytorch-grad-cam's ``BinaryClassifierOutputTarget`` (category 1: +output, 0: -output).
    """

    task = "binary"

    def __init__(self, label: int | str | bool | None = None) -> None:
        self.label = label

    def select(self, output: object, labels: list[str] | None) -> Targets:
        logits = _head(output, "a binary target").detach().float()
        if logits.shape[1] != 1:
            raise TargetError(
                f"a binary target needs one output per image, the model gives {logits.shape[1]}; "
                "use --task classify (softmax) or --task multilabel (sigmoid per class)"
            )
        names = _binary_names(labels)
        if self.label is None:
            positive = logits[:, 0] > 0
        else:
            positive = torch.full(
                (len(logits),), self._positive(names), dtype=torch.bool, device=logits.device
            )
        sign = positive.float() * 2 - 1  # +1 positive, -1 negative

        def score(out: object, rows: torch.Tensor | None) -> torch.Tensor:
            values = _head(out, "a binary target")[:, :1]
            return values * sign.to(values.device)[rows.to(sign.device)][:, None].to(values.dtype)

        p = logits[:, 0].sigmoid()
        return Targets(
            positive.long()[:, None],
            score,
            task=self.task,
            probabilities=torch.where(positive, p, 1 - p)[:, None],
            names=[[names[int(v)]] for v in positive.tolist()],
            class_probs=torch.stack([1 - p, p], 1),
            class_names=names,
        )

    def _positive(self, names: list[str]) -> bool:
        label = self.label
        if isinstance(label, bool):
            return label
        if isinstance(label, str) and not label.strip().lstrip("-").isdigit():
            return class_index(label, names) == 1
        value = int(label)  # type: ignore[arg-type]
        if value not in (0, 1):
            raise TargetError(f"a binary target is 0 (negative) or 1 (positive), got {value}")
        return value == 1


def _binary_names(labels: Sequence[str] | None) -> list[str]:
    if labels is not None and len(labels) == 2:
        return list(labels)
    if labels is not None and len(labels) == 1:
        return [f"not {labels[0]}", labels[0]]
    if labels:
        raise TargetError(
            f"a binary head has two classes (negative, positive), but the labels name {len(labels)}"
        )
    return ["negative", "positive"]


class MultiLabelTarget(Target):
    """A multi-label head (one sigmoid per class): one map per label the model finds in the image.

    A label is found when its sigmoid probability is at least `threshold`, or, with `top_k`, when it
    is among the k most probable; `classes` explains given classes instead, in every image and in the
    order given. All maps come from one forward pass. Images with fewer labels than the batch's most
    are padded (`valid`).
    """

    task = "multilabel"

    def __init__(
        self,
        threshold: float = 0.5,
        *,
        top_k: int | None = None,
        classes: int | str | Sequence[int | str] | None = None,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise TargetError(f"the multi-label threshold is a probability in [0, 1], got {threshold}")
        if top_k is not None and top_k < 1:
            raise TargetError(f"top_k must be at least 1, got {top_k}")
        self.threshold, self.top_k, self.classes = threshold, top_k, classes

    def select(self, output: object, labels: list[str] | None) -> Targets:
        logits = _head(output, "a multi-label target").detach().float()
        batch, count = logits.shape
        probs = logits.sigmoid()
        if self.classes is not None:
            items = [self.classes] if isinstance(self.classes, int | str) else list(self.classes)
            chosen = [class_index(c, labels) if isinstance(c, str) else int(c) for c in items]
            if any(not 0 <= c < count for c in chosen):
                raise TargetError(
                    f"class index out of range: the model has {count} classes (0 to {count - 1})"
                )
            # given classes: the same maps in every image, in the order given
            order = torch.tensor(chosen, device=logits.device).expand(batch, -1)
            valid = torch.ones_like(order, dtype=torch.bool)
        else:
            if self.top_k is not None:
                if self.top_k > count:
                    raise TargetError(f"top_k must be between 1 and {count}, got {self.top_k}")
                found = torch.zeros(batch, count, dtype=torch.bool, device=logits.device)
                found.scatter_(1, top_scores(probs, self.top_k).indices, True)
            else:
                found = probs >= self.threshold
            k = max(1, int(found.sum(1).max()))
            # found labels first, most probable first; padding after
            order = torch.where(found, probs, probs - 2).argsort(dim=1, descending=True, stable=True)[:, :k]
            valid = found.gather(1, order)
        names = [[_name(labels, i) for i in row] for row in order.tolist()]
        return Targets(
            order,
            task=self.task,
            valid=valid,
            probabilities=probs.gather(1, order),
            names=names,
            class_probs=probs,
            single=False,
        )


class RegressionTarget(Target):
    """A regression head: what pushes an output up (`direction="down"`: what pushes it down).

    `outputs` picks the outputs to explain (an index, a name from the labels, or several); None
    explains each output of the head, one map each. There is no probability.
    """

    task = "regression"

    def __init__(
        self, outputs: int | str | Sequence[int | str] | None = None, *, direction: str = "up"
    ) -> None:
        if direction not in ("up", "down"):
            raise TargetError(f"direction is 'up' or 'down', got {direction!r}")
        self.outputs, self.direction = outputs, direction

    def select(self, output: object, labels: list[str] | None) -> Targets:
        values = _head(output, "a regression target").detach()
        batch, count = values.shape
        if self.outputs is None:
            chosen = list(range(count))
        else:
            items = [self.outputs] if isinstance(self.outputs, int | str) else list(self.outputs)
            chosen = [class_index(i, labels) if isinstance(i, str) else int(i) for i in items]
        if any(not 0 <= c < count for c in chosen):
            raise TargetError(f"output index out of range: the model has {count} outputs (0 to {count - 1})")
        sign = 1.0 if self.direction == "up" else -1.0
        index = torch.tensor(chosen, device=values.device)

        def score(out: object, rows: torch.Tensor | None) -> torch.Tensor:
            head = _head(out, "a regression target")
            return sign * head[:, index.to(head.device)]

        suffix = "" if self.direction == "up" else " (down)"
        names = [[_name(labels, c, "output") + suffix for c in chosen]] * batch
        details = [[{"value": round(float(values[n, c]), 6)} for c in chosen] for n in range(batch)]
        return Targets(
            index.expand(batch, -1),
            score,
            task=self.task,
            names=names,
            details=details,
            single=isinstance(self.outputs, int | str),
        )


class SimilarityTarget(Target):
    """An embedding model: the cosine similarity of the image's embedding to a reference embedding.

    `reference` is one embedding (D,) for every image or one per image (N, D): another image's
    embedding (``model(reference_image)``), or any vector of the same size, such as a text embedding.
    The map shows what makes the image look like the reference.
    """

    task = "embed"

    def __init__(self, reference: torch.Tensor) -> None:
        if not isinstance(reference, torch.Tensor) or reference.dim() not in (1, 2):
            shape = (
                tuple(reference.shape) if isinstance(reference, torch.Tensor) else type(reference).__name__
            )
            raise TargetError(f"a reference embedding is a tensor (D,) or (N, D), got {shape}")
        self.reference = reference.detach().float()
        if (
            not torch.isfinite(self.reference).all()
            or (self.reference.reshape(-1, reference.shape[-1]).norm(dim=1) == 0).any()
        ):
            raise TargetError(
                "a reference embedding must be finite and not all zero: cosine similarity to it is undefined"
            )

    def select(self, output: object, labels: list[str] | None) -> Targets:
        embeddings = _embeddings(output).detach()
        batch, size = embeddings.shape
        reference = self.reference.reshape(-1, self.reference.shape[-1])
        if reference.shape[1] != size:
            raise TargetError(
                f"the reference embedding has {reference.shape[1]} values, the model's embeddings {size}"
            )
        if len(reference) not in (1, batch):
            raise TargetError(f"got {len(reference)} reference embeddings for a batch of {batch} images")
        reference = reference.expand(batch, -1)

        def score(out: object, rows: torch.Tensor | None) -> torch.Tensor:
            emb = _embeddings(out)
            ref = reference.to(emb.device, emb.dtype)[rows.to(reference.device)]
            return F.cosine_similarity(emb, ref, dim=1)[:, None]

        similarity = F.cosine_similarity(embeddings.float(), reference.to(embeddings.device), dim=1)
        return Targets(
            None,
            score,
            task=self.task,
            names=[["similarity"]] * batch,
            details=[[{"similarity": round(float(s), 6)}] for s in similarity],
        )


def _embeddings(output: object) -> torch.Tensor:
    tensor = output_tensor(output)
    if tensor is None and hasattr(output, "pooler_output"):
        tensor = output.pooler_output
    if tensor is None or tensor.dim() < 2:
        raise TargetError(f"a similarity target needs embeddings (N, D), got {describe_output(output)}")
    return tensor.flatten(1)


def _name(labels: Sequence[str] | None, index: int, kind: str = "class") -> str:
    if labels is not None and 0 <= index < len(labels):
        return labels[index]
    return f"{kind} {index}"
