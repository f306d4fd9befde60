"""TCPD metrics must reproduce the reference implementation's own doctest values exactly."""

import pytest

from regression_pipelines.detection.tcpd import covering, f_measure, partition_from_cps, true_positives


def test_true_positives_match_each_annotation_once() -> None:
    assert true_positives({1, 10, 20, 23}, {3, 8, 20}) == {1, 10, 20}
    assert true_positives({1, 10, 20, 23}, {1, 3, 8, 20}) == {1, 10, 20}
    assert true_positives({1, 10, 20, 23}, {1, 3, 5, 8, 20}) == {1, 10, 20}
    assert true_positives(set(), {1, 2, 3}) == set()
    assert true_positives({1, 2, 3}, set()) == set()


@pytest.mark.parametrize(
    ("annotations", "predictions", "expected"),
    [
        ({1: [10, 20], 2: [11, 20], 3: [10], 4: [0, 5]}, [10, 20], 1.0),
        ({1: [], 2: [10], 3: [50]}, [10], 0.9090909090909091),
        ({1: [], 2: [10], 3: [50]}, [], 0.8),
    ],
)
def test_f1_matches_reference(annotations: dict, predictions: list[int], expected: float) -> None:
    assert f_measure(annotations, predictions)[0] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("annotations", "predictions", "expected"),
    [
        ({1: [10, 20], 2: [10], 3: [0, 5]}, [10, 20], 0.7962962962962963),
        ({1: [], 2: [10], 3: [40]}, [10], 0.7954144620811286),
        ({1: [], 2: [10], 3: [40]}, [], 0.8189300411522634),
    ],
)
def test_covering_matches_reference(annotations: dict, predictions: list[int], expected: float) -> None:
    assert covering(annotations, predictions, 45) == pytest.approx(expected, abs=1e-12)


def test_partition_splits_at_change_points() -> None:
    assert partition_from_cps([2, 4], 6) == [{0, 1}, {2, 3}, {4, 5}]
