"""What to explain: predicted class, index, name, one per image, top-k, or any score function."""

from __future__ import annotations

import pytest
import torch

from mieruka.targets import TargetError, class_index, resolve_targets, top_scores

LOGITS = torch.tensor([[0.1, 3.0, 2.0], [5.0, 1.0, 4.0]])
LABELS = ["tabby cat", "golden_retriever", "red fox"]


def test_default_is_the_predicted_class():
    assert resolve_targets(None, LOGITS).indices.tolist() == [[1], [0]]


def test_top_k_orders_by_score():
    assert resolve_targets(None, LOGITS, top_k=2).indices.tolist() == [[1, 2], [0, 2]]


def test_tied_scores_rank_in_class_order_wherever_they_are_ranked():
    """An untrained head with all-zero weights gives every class the same score: the class explained
    and the record's top five must still agree (topk leaves ties in any order; its first of five and
    its first of one differed)."""
    logits = torch.zeros(2, 1000)
    logits[1, [7, 3]] = 1.0  # a tie at the top between classes 3 and 7
    assert top_scores(logits, 5).indices.tolist() == [[0, 1, 2, 3, 4], [3, 7, 0, 1, 2]]
    assert resolve_targets(None, logits).indices.tolist() == [[0], [3]]
    assert resolve_targets(None, logits, top_k=2).indices.tolist() == [[0, 1], [3, 7]]


def test_index_and_name_apply_to_every_image():
    assert resolve_targets(2, LOGITS).indices.tolist() == [[2], [2]]
    assert resolve_targets("Golden Retriever", LOGITS, LABELS).indices.tolist() == [[1], [1]]
    assert class_index("7", None) == 7


def test_one_target_per_image():
    assert resolve_targets([0, "red fox"], LOGITS, LABELS).indices.tolist() == [[0], [2]]
    assert resolve_targets(torch.tensor([2, 1]), LOGITS).indices.tolist() == [[2], [1]]
    assert resolve_targets(torch.tensor(1), LOGITS).indices.tolist() == [[1], [1]]  # one for all


def test_callable_target_is_the_score_itself():
    targets = resolve_targets(lambda logits: logits[:, 0] - logits[:, 2], LOGITS)
    assert targets.indices is None
    torch.testing.assert_close(targets.scores(LOGITS), torch.tensor([[-1.9], [1.0]]))


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (3, "out of range"),
        ("red wolf", "did you mean 'red fox'"),
        ([0], "1 targets for a batch of 2"),
        # a bool is no class number, nor a float a class (True would read as class 1, 1.9 as 1)
        (True, r"an index \(int\) or a name \(str\), got True"),
        (1.0, r"got 1\.0; a score of your own is a function"),
        ([0, 1.9], r"got 1\.9"),
        (torch.tensor([0.0, 1.0]), r"got 0\.0"),
    ],
)
def test_bad_targets_say_what_is_wrong(target, message):
    with pytest.raises(TargetError, match=message):
        resolve_targets(target, LOGITS, LABELS)


def test_a_name_needs_labels():
    with pytest.raises(TargetError, match="--labels"):
        resolve_targets("cat", LOGITS, None)


def test_a_word_finds_the_classes_that_hold_it_first():
    from mieruka.labels import imagenet_labels

    with pytest.raises(TargetError) as caught:
        class_index("cat", imagenet_labels())
    suggested = str(caught.value).split("did you mean ")[1]
    # WordNet synonyms count: ImageNet's 'tabby' is 'tabby, tabby cat'
    assert suggested.startswith("'tabby', 'tiger cat', 'Persian cat', 'Siamese cat', 'Egyptian cat'")
    assert "crate" not in suggested and "castle" not in suggested


def test_close_spellings_and_case_find_the_class():
    from mieruka.labels import imagenet_labels, suggest

    assert suggest("Golden Retriver", imagenet_labels())[0] == "golden retriever"
    assert suggest("TABBBY", imagenet_labels())[0] == "tabby"
    assert class_index("GOLDEN_RETRIEVER", imagenet_labels()) == 207


def test_few_classes_are_listed_in_full():
    with pytest.raises(TargetError, match="its classes are 'tabby cat', 'golden_retriever', 'red fox'"):
        class_index("wolf", LABELS)


def test_a_name_a_labels_file_repeats_is_refused_not_read_as_its_first_class():
    labels = ["cat", "dog", "Cat", "fox"]
    with pytest.raises(
        TargetError, match=r"'cat' is the name of classes 0, 2: give the number of the one you mean"
    ):
        class_index("cat", labels)
    assert class_index("2", labels) == 2 and class_index("dog", labels) == 1


def test_names_match_whatever_their_unicode_normalization():
    import unicodedata

    decomposed = [unicodedata.normalize("NFD", name) for name in ("ガラス", "猫", "鳥")]
    assert class_index(unicodedata.normalize("NFC", "ガラス"), decomposed) == 0
    assert class_index("ＣＡＴ", ["dog", "cat"]) == 1  # full-width letters
