"""What to explain: which scores of the model's output each map answers for.

Every target comes down to scores (N, K), one per image and per map, whose gradients make the maps.
Class numbers and names, "the predicted class" and "the top k" are sugar for a classifier's logits;
the objects here cover other heads and tasks; a callable ``f(output) -> (N,)`` explains any scalar.

    =====================  =============================================  ==========================
    target                 score                                          default
    =====================  =============================================  ==========================
    class / top-k          the class's logit (softmax probability shown)  the predicted class
    BinaryTarget           +logit (positive) or -logit (negative)         the predicted side
    MultiLabelTarget       each found label's logit (sigmoid shown)       labels with p >= 0.5
    RegressionTarget       +output (up) or -output (down)                 every output, up
    SimilarityTarget       cosine similarity to a reference embedding     (a reference is needed)
    SegmentationTarget     a class's logit summed over a region           every class in the mask
    DetectionTarget        a detected object's score, matched by IoU      every object >= min_score
    =====================  =============================================  ==========================
"""

from .base import Target, TargetError, Targets, class_scores, describe_output, output_tensor, top_scores
from .classes import TargetSpec, class_index, resolve_targets
from .detection import DetectionTarget
from .heads import BinaryTarget, MultiLabelTarget, RegressionTarget, SimilarityTarget
from .segmentation import SegmentationTarget

__all__ = [
    "BinaryTarget",
    "DetectionTarget",
    "MultiLabelTarget",
    "RegressionTarget",
    "SegmentationTarget",
    "SimilarityTarget",
    "Target",
    "TargetError",
    "TargetSpec",
    "Targets",
    "class_index",
    "class_scores",
    "describe_output",
    "output_tensor",
    "resolve_targets",
    "top_scores",
]
