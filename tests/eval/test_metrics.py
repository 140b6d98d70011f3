import math

import numpy as np
import pytest

from flowless.eval.metrics import (
    confusion_matrix,
    mean_class_accuracy,
    per_class_accuracy,
    ranked_classes,
    summarize,
    topk_accuracy,
    topk_correct,
)
from flowless.eval.scoring import FUSION_RULES, fuse, log_softmax, softmax

# 5 videos, 3 classes. Rankings (best first):
#   v0: 0,1,2  label 0 -> top1 yes
#   v1: 2,0,1  label 0 -> top1 no, top2 yes
#   v2: 1,2,0  label 1 -> top1 yes
#   v3: 0,2,1  label 1 -> top1 no, top2 no, top3 yes
#   v4: 2,1,0  label 2 -> top1 yes
SCORES = np.array(
    [
        [3.0, 2.0, 1.0],
        [0.5, 0.1, 0.9],
        [0.0, 5.0, 1.0],
        [2.0, 0.0, 1.0],
        [-1.0, 0.0, 1.0],
    ]
)
LABELS = np.array([0, 0, 1, 1, 2])


def test_topk_against_hand_counts():
    assert topk_accuracy(SCORES, LABELS, 1) == pytest.approx(3 / 5)
    assert topk_accuracy(SCORES, LABELS, 2) == pytest.approx(4 / 5)
    assert topk_accuracy(SCORES, LABELS, 3) == pytest.approx(1.0)
    assert list(topk_correct(SCORES, LABELS, 1)) == [True, False, True, False, True]


def test_topk_clips_k_to_number_of_classes():
    # top-5 with 3 classes is top-3: every label is found.
    assert topk_accuracy(SCORES, LABELS, 5) == 1.0
    assert ranked_classes(SCORES, 5).shape == (5, 3)


def test_ties_break_towards_lower_index_like_argmax():
    scores = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0]])
    assert list(ranked_classes(scores, 1)[:, 0]) == list(scores.argmax(1)) == [0, 1]


def test_confusion_per_class_and_mean_class_accuracy():
    predicted = SCORES.argmax(1)  # [0, 2, 1, 0, 2]
    cm = confusion_matrix(LABELS, predicted, 3)
    expected = np.array([[1, 0, 1], [1, 1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(cm, expected)
    np.testing.assert_allclose(per_class_accuracy(cm), [0.5, 0.5, 1.0])
    assert mean_class_accuracy(cm) == pytest.approx((0.5 + 0.5 + 1.0) / 3)


def test_mean_class_accuracy_differs_from_top1_on_imbalanced_classes():
    # class 0: 4 videos all right; class 1: 1 video wrong -> top1 0.8, mean class 0.5
    labels = np.array([0, 0, 0, 0, 1])
    scores = np.array([[1.0, 0.0]] * 5)
    s = summarize(scores, labels)
    assert s["top1"] == pytest.approx(0.8)
    assert s["mean_class_acc"] == pytest.approx(0.5)


def test_class_without_videos_is_left_out_of_mean_class_accuracy():
    cm = confusion_matrix(np.array([0, 0, 1]), np.array([0, 1, 1]), 3)
    acc = per_class_accuracy(cm)
    assert acc[0] == 0.5 and acc[1] == 1.0 and math.isnan(acc[2])
    assert mean_class_accuracy(cm) == pytest.approx(0.75)


def test_unknown_labels_are_excluded():
    scores = np.vstack([SCORES, [[9.0, 0.0, 0.0]]])
    labels = np.append(LABELS, -1)
    s = summarize(scores, labels)
    assert s["top1"] == pytest.approx(3 / 5)
    assert s["videos"] == 6 and s["labelled"] == 5
    assert s["confusion"].sum() == 5


def test_summarize_keys_and_confusion():
    s = summarize(SCORES, LABELS)
    assert s["top1"] == pytest.approx(0.6) and s["top5"] == 1.0
    assert s["confusion"].trace() == 3


def test_softmax_and_log_softmax_are_stable():
    z = np.array([[1000.0, 1000.0, -1000.0]])
    np.testing.assert_allclose(softmax(z), [[0.5, 0.5, 0.0]], atol=1e-12)
    assert np.isfinite(log_softmax(z)[0, :2]).all()


@pytest.mark.parametrize("rule", FUSION_RULES)
def test_fusing_a_stream_with_itself_equals_the_stream(rule):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(4, 7)) * 3
    np.testing.assert_allclose(fuse([z, z], rule), softmax(z), atol=1e-12)
    np.testing.assert_allclose(fuse([z], rule), softmax(z), atol=1e-12)


def test_fusion_rules_against_hand_computation():
    a = np.array([2.0, 0.0])
    b = np.array([0.0, 1.0])
    pa, pb = softmax(a), softmax(b)
    np.testing.assert_allclose(fuse([a, b], "softmax-mean"), (pa + pb) / 2)
    np.testing.assert_allclose(fuse([a, b], "logit-mean"), softmax(np.array([1.0, 0.5])))
    geo = np.sqrt(pa * pb)
    np.testing.assert_allclose(fuse([a, b], "logprob-sum"), geo / geo.sum())


def test_rules_disagree_when_one_stream_is_confidently_wrong():
    # docs/method.md §8: a confidently wrong stream wins a softmax mean but not a
    # log-prob sum when the other stream is sure it is impossible.
    right = np.array([2.0, -8.0, 1.6])  # p = [0.6, 3e-5, 0.4]
    wrong = np.array([4.0, 9.0, 0.0])  # p = [0.007, 0.993, 1e-4]
    assert fuse([right, wrong], "softmax-mean").argmax() == 1
    assert fuse([right, wrong], "logprob-sum").argmax() == 0


def test_unknown_rule_is_rejected():
    with pytest.raises(ValueError, match="unknown fusion rule"):
        fuse([np.zeros(3)], "max")
