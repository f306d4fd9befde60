"""TCPDBench evaluation metrics (van den Burg & Williams 2020), so annotated series can be scored.

Ported to match `analysis/scripts/metrics.py` of alan-turing-institute/TCPDBench: change points are
0-based indices of the first point of a new segment; 0 is added to every annotation set and to the
predictions; F1 uses a margin of 5, precision is pooled over the union of annotators, recall is averaged
per annotator, and every true change point is matched to at most one prediction (and vice versa).
Covering is the length-weighted maximum Jaccard overlap of each annotated segment, averaged over annotators.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def true_positives(truth: Iterable[int], predictions: Iterable[int], margin: int = 5) -> set[int]:
    """Annotated points matched by a distinct prediction within `margin` (closest first, no double counting)."""
    remaining = set(predictions)
    matched: set[int] = set()
    for tau in sorted(set(truth)):
        close = sorted((abs(tau - x), x) for x in remaining if abs(tau - x) <= margin)
        if not close:
            continue
        matched.add(tau)
        remaining.remove(close[0][1])
    return matched


def f_measure(
    annotations: Mapping[str, Iterable[int]],
    predictions: Iterable[int],
    margin: int = 5,
    alpha: float = 0.5,
) -> tuple[float, float, float]:
    """(F, precision, recall); alpha=0.5 gives F1."""
    per_annotator = [set(cps) | {0} for cps in annotations.values()]
    if not per_annotator:
        raise ValueError("need at least one annotator")
    predicted = set(predictions) | {0}
    union = set().union(*per_annotator)
    precision = len(true_positives(union, predicted, margin)) / len(predicted)
    recall = sum(len(true_positives(tk, predicted, margin)) / len(tk) for tk in per_annotator) / len(per_annotator)
    denom = alpha * recall + (1 - alpha) * precision
    f = precision * recall / denom if denom > 0 else 0.0
    return f, precision, recall


def partition_from_cps(locations: Iterable[int], n_obs: int) -> list[set[int]]:
    """Segments of range(n_obs) cut at each change point."""
    partition: list[set[int]] = []
    current: set[int] = set()
    cps = iter(sorted(set(locations)))
    cp = next(cps, None)
    for i in range(n_obs):
        if i == cp:
            if current:
                partition.append(current)
            current = set()
            cp = next(cps, None)
        current.add(i)
    partition.append(current)
    return partition


def _jaccard(a: set[int], b: set[int]) -> float:
    return len(a & b) / len(a | b)


def cover_single(truth: list[set[int]], predicted: list[set[int]]) -> float:
    """Covering of segmentation `truth` by `predicted` (Arbelaez et al. 2010, eq. 8; TCPDBench's order)."""
    total = sum(map(len, predicted))
    if total != sum(map(len, truth)):
        raise ValueError("partitions cover different numbers of points")
    return sum(len(r) * max(_jaccard(r, rp) for rp in predicted) for r in truth) / total


def covering(annotations: Mapping[str, Iterable[int]], predictions: Iterable[int], n_obs: int) -> float:
    """Segmentation covering of the predictions, averaged over annotators."""
    predicted = partition_from_cps(predictions, n_obs)
    scores = [cover_single(partition_from_cps(cps, n_obs), predicted) for cps in annotations.values()]
    if not scores:
        raise ValueError("need at least one annotator")
    return sum(scores) / len(scores)
