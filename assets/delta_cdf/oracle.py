"""The invariants of a change data feed, judged against the model: pure functions over what was read.

Every read is a `Read` (rows, or the error that stopped it). Each kind of unavailability is judged by one
check only, so a fault fails the check it is about: a feed range that cannot be read (with CDF on) fails
`cdf_replay_matches_snapshots`, a snapshot that cannot be read fails `compaction_and_time_travel`; the other
checks judge what they could read and name what they skipped. Ranges where the table's own metadata says CDF
was off are not replayable by definition (the protocol's readers refuse them): a data change made there fails
`operation_metrics_match_cdf`, which is about commits whose change rows do not account for them.
`commits_accounted_for` is the log's ledger: every version has its commit file, every commit was made by this
workload, every acknowledged commit is in the log exactly once. Each problem carries the version it implicates,
so a failing check can be shrunk to the operations up to that version.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from assets.delta_cdf.model import Row, VersionedModel, row_key
from regression_pipelines.results import Invariant

REPLAY = "cdf_replay_matches_snapshots"
WELL_FORMED = "cdf_well_formed"
RANGE_SPLITTING = "cdf_range_splitting"
OPERATION_METRICS = "operation_metrics_match_cdf"
COMPACTION_TIME_TRAVEL = "compaction_and_time_travel"
ENGINES_AGREE = "engines_agree"
COMMITS_ACCOUNTED = "commits_accounted_for"
INVARIANTS = (
    REPLAY,
    WELL_FORMED,
    RANGE_SPLITTING,
    OPERATION_METRICS,
    COMPACTION_TIME_TRAVEL,
    ENGINES_AGREE,
    COMMITS_ACCOUNTED,
)
# Checks a serial replay of the ops on a fresh table can reproduce (and so shrink).
SHRINKABLE = (REPLAY, WELL_FORMED, RANGE_SPLITTING, OPERATION_METRICS, COMPACTION_TIME_TRAVEL, ENGINES_AGREE)

CHANGE_TYPES = ("insert", "update_preimage", "update_postimage", "delete")
REMOVES, ADDS = ("delete", "update_preimage"), ("insert", "update_postimage")
SHOWN = 3  # problems named in a check's detail

FeedRow = tuple[Row, str, int, int]  # row, _change_type, _commit_version, _commit_timestamp (epoch ms)
Problem = tuple[int, str]  # the version it implicates, what is wrong


@dataclass(frozen=True)
class Read:
    """What one read returned: its rows (and count, for engines), or the error that stopped it."""

    rows: tuple = ()
    error: str | None = None
    seconds: float = 0.0
    count: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class CommitInfo:
    """A version's commit as its log records it."""

    version: int
    operation: str
    metrics: Mapping[str, int]


@dataclass(frozen=True)
class Plan:
    """Which feed ranges to read: replay pairs (v, w) and splitting triples (v, u, w), inside CDF stretches."""

    stretches: tuple[tuple[int, int], ...]
    pairs: tuple[tuple[int, int], ...]
    triples: tuple[tuple[int, int, int], ...]

    def feed_ranges(self) -> list[tuple[int, int]]:
        ranges = set(self.stretches)
        ranges.update((v + 1, w) for v, w in self.pairs)
        for a, b in self.stretches:
            ranges.update((v, v) for v in range(a, b + 1))
        for v, u, w in self.triples:
            ranges.update({(v, w), (v, u), (u + 1, w)})
        return sorted(ranges)


@dataclass
class Readings:
    """Everything the checks judge; filled by the scenario, read by the functions below."""

    model: VersionedModel
    cdf_enabled: Mapping[int, bool]
    commits: Mapping[int, CommitInfo]
    plan: Plan
    snapshots: dict[int, Read] = field(default_factory=dict)  # delta-rs rows per version
    feeds: dict[tuple[int, int], Read] = field(default_factory=dict)  # CDF(start..end), both inclusive
    engines: dict[str, dict[int, Read]] = field(default_factory=dict)  # engine -> version -> rows and count
    engine_feeds: dict[str, Read] = field(default_factory=dict)  # engines that read the CDF too: full range
    after_vacuum: Read | None = None
    files: list[int] = field(default_factory=list)  # files in each readable version's snapshot


def stretches(cdf_enabled: Mapping[int, bool]) -> list[tuple[int, int]]:
    """Maximal runs of versions whose metadata has CDF on, as inclusive (first, last)."""
    runs: list[tuple[int, int]] = []
    for version in sorted(cdf_enabled):
        if not cdf_enabled[version]:
            continue
        if runs and runs[-1][1] == version - 1:
            runs[-1] = (runs[-1][0], version)
        else:
            runs.append((version, version))
    return runs


def plan_ranges(cdf_enabled: Mapping[int, bool], seed: int, pairs: int, triples: int) -> Plan:
    """Every stretch replayed whole (from the snapshot before it) plus seeded random pairs; every adjacent
    boundary split plus seeded random triples."""
    rng = random.Random(seed)
    runs = stretches(cdf_enabled)
    chosen_pairs = {(a - 1, b) for a, b in runs}
    chosen_triples = {(v, v, v + 1) for a, b in runs for v in range(a, b)}
    long_runs = [(a, b) for a, b in runs if b > a]
    weights = [b - a for a, b in long_runs]
    for _ in range(pairs if long_runs else 0):
        a, b = rng.choices(long_runs, weights)[0]
        v = rng.randint(a - 1, b - 1)
        chosen_pairs.add((v, rng.randint(v + 1, b)))
    for _ in range(triples if long_runs else 0):
        a, b = rng.choices(long_runs, weights)[0]
        v, w = sorted(rng.sample(range(a, b + 1), 2))
        chosen_triples.add((v, rng.randint(v, w - 1), w))
    return Plan(tuple(runs), tuple(sorted(chosen_pairs)), tuple(sorted(chosen_triples)))


# --- the checks --------------------------------------------------------------------------------------------


def check_replay(r: Readings) -> Invariant:
    problems, skipped, judged = [], [], 0
    for v, w in r.plan.pairs:
        start = Read(rows=()) if v < 0 else r.snapshots[v]
        feed, end = r.feeds[(v + 1, w)], r.snapshots[w]
        if not feed.ok:
            problems.append((w, f"CDF({v + 1}..{w}) unreadable: {feed.error}"))
            continue
        if not start.ok or not end.ok:
            skipped.append(f"({v},{w})")
            continue
        judged += 1
        replayed, trouble = replay(start.rows, feed.rows)
        problems += [(w, f"snapshot({v}) + CDF({v + 1}..{w}): {t}") for t in trouble]
        expectations = [("snapshot", end.rows)] + ([("model", r.model.unordered(w))] if r.model.known(w) else [])
        for name, expected in expectations:
            diff = difference(replayed, expected)
            if diff:
                problems.append((w, f"snapshot({v}) + CDF({v + 1}..{w}) != {name}({w}): {diff}"))
    facts = {"pairs": len(r.plan.pairs), "judged": judged, "skipped": len(skipped)}
    summary = f"{judged} of {len(r.plan.pairs)} pairs replayed onto snapshot and model"
    if skipped:
        summary += f"; skipped {len(skipped)} with an unreadable snapshot (judged by time travel)"
    return _verdict(REPLAY, problems, summary, facts, judged)


def replay(start: Iterable[Row], feed: Iterable[FeedRow]) -> tuple[Counter, list[str]]:
    """Apply change rows version by version: removals (delete, preimage) then additions (insert, postimage)."""
    rows: Counter = Counter(start)
    trouble = []
    by_version: dict[int, list[FeedRow]] = defaultdict(list)
    for item in feed:
        by_version[item[2]].append(item)
    for version in sorted(by_version):
        changes = by_version[version]
        for row, kind, _, _ in changes:
            if kind in REMOVES:
                if rows[row] <= 0:
                    trouble.append(f"v{version} {kind} of a row that is not there: {row}")
                rows[row] -= 1
        for row, kind, _, _ in changes:
            if kind in ADDS:
                rows[row] += 1
    return +rows, trouble


def difference(got: Counter, expected: Iterable[Row]) -> str:
    """'' when equal, else what is missing and extra (counts and the first of each). `got` holds no zero or
    negative counts (as `replay` and `Counter(rows)` give), so equal multisets are equal dicts."""
    want = Counter(expected)
    if dict.__eq__(got, want):
        return ""
    missing, extra = want - got, got - want
    if not missing and not extra:
        return ""
    parts = []
    for name, rows in (("missing", missing), ("extra", extra)):
        if rows:
            first = sorted(rows.elements(), key=row_key)[0]
            parts.append(f"{sum(rows.values())} {name} (e.g. {first})")
    return ", ".join(parts)


def check_well_formed(r: Readings) -> Invariant:
    problems: list[Problem] = []
    skipped = []
    seen_rows = 0
    for a, b in r.plan.stretches:
        whole = r.feeds[(a, b)]
        if whole.ok:
            rows, requests = list(whole.rows), [((a, b), whole.rows)]
        else:  # judge what can be read, version by version; the unreadable rest is replay's to report
            requests = [((v, v), r.feeds[(v, v)].rows) for v in range(a, b + 1) if r.feeds[(v, v)].ok]
            rows = [item for _, part in requests for item in part]
            skipped += [str(v) for v in range(a, b + 1) if not r.feeds[(v, v)].ok]
        seen_rows += len(rows)
        problems += _types_and_ranges(requests)
        problems += _images_pair_up(rows)
        readable = {v for v in range(a, b + 1) if whole.ok or r.feeds[(v, v)].ok}
        problems += _versions_contiguous(rows, r.model, readable)
        problems += _timestamps_monotonic(rows)
    summary = f"{seen_rows} change rows in {len(r.plan.stretches)} CDF stretch(es)"
    if skipped:
        summary += f"; versions {','.join(skipped)} unreadable (judged by replay)"
    return _verdict(WELL_FORMED, problems, summary, {"change_rows": seen_rows}, len(r.plan.stretches))


def _types_and_ranges(requests: list[tuple[tuple[int, int], tuple]]) -> list[Problem]:
    problems = []
    for (start, end), rows in requests:
        kinds = {kind for _, kind, _, _ in rows} - set(CHANGE_TYPES)
        if kinds:
            first = min(v for _, kind, v, _ in rows if kind in kinds)
            problems.append(
                (first, f"CDF({start}..{end}) has _change_type values outside the protocol: {sorted(kinds)}")
            )
        outside = sorted({v for _, _, v, _ in rows if not start <= v <= end})
        if outside:
            problems.append((end, f"CDF({start}..{end}) returned versions outside the range: {outside[:5]}"))
    return problems


def _images_pair_up(rows: list[FeedRow]) -> list[Problem]:
    balance: Counter = Counter()
    for row, kind, version, _ in rows:
        if kind == "update_preimage":
            balance[(version, row[0])] += 1
        elif kind == "update_postimage":
            balance[(version, row[0])] -= 1
    unpaired = sorted(key for key, n in balance.items() if n)
    if not unpaired:
        return []
    return [(unpaired[0][0], f"{len(unpaired)} (version, key) with unpaired update images, e.g. {unpaired[:3]}")]


def _versions_contiguous(rows: list[FeedRow], model: VersionedModel, readable: set[int]) -> list[Problem]:
    seen = {v for _, _, v, _ in rows}
    missing = sorted(v for v in readable if model.known(v) and model.changed(v) and v not in seen)
    if missing:
        return [(missing[0], f"versions that changed rows but have no change rows: {missing[:10]}")]
    return []


def _timestamps_monotonic(rows: list[FeedRow]) -> list[Problem]:
    stamps: dict[int, set[int]] = defaultdict(set)
    for _, _, version, stamp in rows:
        stamps[version].add(stamp)
    problems = [
        (v, f"v{v} has {len(s)} different _commit_timestamp values") for v, s in sorted(stamps.items()) if len(s) > 1
    ]
    ordered = [(v, min(s)) for v, s in sorted(stamps.items())]
    for (v0, t0), (v1, t1) in zip(ordered, ordered[1:], strict=False):
        if t1 < t0:
            problems.append((v1, f"_commit_timestamp goes backwards: v{v1} is {(t0 - t1) / 1000:.3f} s before v{v0}"))
    return problems


def check_range_splitting(r: Readings) -> Invariant:
    problems: list[Problem] = []
    judged, skipped = 0, 0
    for v, u, w in r.plan.triples:
        whole, left, right = r.feeds[(v, w)], r.feeds[(v, u)], r.feeds[(u + 1, w)]
        if not (whole.ok and left.ok and right.ok):
            skipped += 1
            continue
        judged += 1
        diff = _feed_difference(_multiset(left.rows, right.rows), Counter(whole.rows))
        if diff:
            problems.append((w, f"CDF({v}..{w}) != CDF({v}..{u}) + CDF({u + 1}..{w}): {diff}"))
    for a, b in r.plan.stretches:
        whole, parts = r.feeds[(a, b)], [r.feeds[(x, x)] for x in range(a, b + 1)]
        if whole.ok and all(p.ok for p in parts):
            judged += 1
            diff = _feed_difference(_multiset(*(p.rows for p in parts)), Counter(whole.rows))
            if diff:
                problems.append((b, f"CDF({a}..{b}) != the sum of its single versions: {diff}"))
    summary = f"{judged} splits compared"
    if skipped:
        summary += f"; {skipped} with an unreadable part skipped (judged by replay)"
    return _verdict(RANGE_SPLITTING, problems, summary, {"judged": judged, "skipped": skipped}, judged)


def _multiset(*parts: Iterable) -> Counter:
    counts: Counter = Counter()
    for part in parts:
        counts.update(part)
    return counts


def _feed_difference(split: Counter, whole: Counter) -> str:
    if dict.__eq__(split, whole):  # both hold positive counts only
        return ""
    missing, extra = whole - split, split - whole
    if not missing and not extra:
        return ""
    return f"{sum(extra.values())} rows only in the split, {sum(missing.values())} only in the whole range"


# Which commit-info metric must equal which count of change rows, per operation (delta-rs names).
METRIC_RULES: dict[str, dict[str, tuple[str, ...]]] = {
    "WRITE": {"num_added_rows": ("insert",)},
    "UPDATE": {"num_updated_rows": ("update_postimage",), "num_copied_rows": ()},
    "DELETE": {"num_deleted_rows": ("delete",)},
    "MERGE": {
        "num_target_rows_inserted": ("insert",),
        "num_target_rows_updated": ("update_postimage",),
        "num_target_rows_deleted": ("delete",),
    },
}
# Change types an operation must not emit at all.
FORBIDDEN = {"UPDATE": ("insert", "delete"), "DELETE": ("insert", "update_preimage", "update_postimage")}


def check_operation_metrics(r: Readings) -> Invariant:
    problems: list[Problem] = []
    judged, skipped = 0, []
    for version in range(r.model.latest + 1):
        info = r.commits.get(version)
        if info is None or r.model.data_neutral(version) or info.operation not in METRIC_RULES:
            continue
        if not r.cdf_enabled[version]:
            claimed = {k: v for k, v in info.metrics.items() if k in METRIC_RULES[info.operation] and v}
            problems.append(
                (version, f"v{version} {info.operation} changed rows {claimed} with CDF switched off: no change rows")
            )
            continue
        feed = r.feeds.get((version, version))
        if feed is None or not feed.ok:
            skipped.append(str(version))
            continue
        judged += 1
        counts = Counter(kind for _, kind, _, _ in feed.rows)
        for metric, kinds in METRIC_RULES[info.operation].items():
            if not kinds or metric not in info.metrics:
                continue
            shown = sum(counts[k] for k in kinds)
            if int(info.metrics[metric]) != shown:
                problems.append(
                    (version, f"v{version} {info.operation} {metric}={info.metrics[metric]} but CDF shows {shown}")
                )
        wrong = {k: counts[k] for k in FORBIDDEN.get(info.operation, ()) if counts[k]}
        if wrong:
            problems.append((version, f"v{version} {info.operation} emitted change rows it cannot have: {wrong}"))
    summary = f"{judged} data-changing commits matched against their change rows"
    if skipped:
        summary += f"; versions {','.join(skipped)} unreadable (judged by replay)"
    return _verdict(OPERATION_METRICS, problems, summary, {"judged": judged}, judged)


def check_compaction_and_time_travel(r: Readings) -> Invariant:
    problems: list[Problem] = []
    neutral_judged = 0
    for version in range(r.model.latest + 1):
        if not r.model.data_neutral(version) or not r.cdf_enabled[version]:
            continue
        feed = r.feeds.get((version, version))
        if feed is not None and feed.ok:
            neutral_judged += 1
            if feed.rows:
                counts = dict(Counter(kind for _, kind, _, _ in feed.rows))
                label = r.model.changes[version].label or r.commits[version].operation
                problems.append((version, f"v{version} ({label}) changes no data but emitted change rows {counts}"))
    for version in range(r.model.latest + 1):
        snap = r.snapshots[version]
        if not snap.ok:
            problems.append((version, f"time travel to v{version} failed: {snap.error}"))
            continue
        if r.model.known(version) and (diff := difference(Counter(snap.rows), r.model.unordered(version))):
            problems.append((version, f"snapshot({version}) != model: {diff}"))
    latest = r.model.latest
    if r.after_vacuum is not None:
        if not r.after_vacuum.ok:
            problems.append((latest, f"latest snapshot unreadable after VACUUM: {r.after_vacuum.error}"))
        elif r.model.known(latest) and (diff := difference(Counter(r.after_vacuum.rows), r.model.unordered(latest))):
            problems.append((latest, f"latest snapshot after VACUUM != model: {diff}"))
    summary = f"{r.model.latest + 1} versions time-travelled, {neutral_judged} data-neutral commits without change rows"
    if r.model.uncertain_from is not None:
        summary += f"; the model is uncertain from v{r.model.uncertain_from} (its commit file is gone)"
    facts = {"versions": r.model.latest + 1, "neutral_commits": neutral_judged}
    return _verdict(COMPACTION_TIME_TRAVEL, problems, summary, facts, r.model.latest + 1)


def check_engines_agree(r: Readings, unavailable: Mapping[str, str]) -> Invariant:
    problems: list[Problem] = []
    compared = 0
    names = sorted(r.engines)
    for version in range(r.model.latest + 1):
        reads = {name: r.engines[name][version] for name in names if version in r.engines[name]}
        failed = {n: x.error for n, x in reads.items() if not x.ok}
        good = {n: x for n, x in reads.items() if x.ok}
        if failed and good:
            problems.append(
                (version, f"v{version}: {sorted(good)} read it, {sorted(failed)} failed: {next(iter(failed.values()))}")
            )
        if len(good) < 2:
            continue
        compared += 1
        base_name, base = names_first(good)
        for name, other in good.items():
            if name == base_name:
                continue
            if diff := difference(Counter(other.rows), list(base.rows)):
                problems.append((version, f"v{version}: {name} rows != {base_name} rows: {diff}"))
        counts = {n: x.count for n, x in good.items()}
        if len(set(counts.values())) > 1:
            problems.append((version, f"v{version}: count(*) differs between engines: {counts}"))
    problems += _engine_feeds_agree(r)
    summary = f"{len(names)} readers ({', '.join(names)}) agree on {compared} versions"
    if unavailable:
        summary += "; unavailable: " + "; ".join(f"{n}: {why}" for n, why in sorted(unavailable.items()))
    return _verdict(ENGINES_AGREE, problems, summary, {"readers": len(names), "compared": compared}, compared)


def names_first(good: Mapping[str, Read]) -> tuple[str, Read]:
    name = sorted(good)[0]
    return name, good[name]


def _engine_feeds_agree(r: Readings) -> list[Problem]:
    """Engines that read the CDF too (Spark with Delta) must show the same change rows (timestamps aside:
    engines take them from different sources by design)."""
    problems = []
    if not r.engine_feeds:
        return problems
    a, b = r.plan.stretches[-1] if r.plan.stretches else (0, -1)
    reference = r.feeds.get((a, b))
    if reference is None or not reference.ok:
        return problems
    want = Counter((row, kind, v) for row, kind, v, _ in reference.rows)
    for name, read in sorted(r.engine_feeds.items()):
        if not read.ok:
            problems.append((b, f"{name} CDF({a}..{b}) failed: {read.error}"))
        elif diff := _feed_difference(Counter((row, kind, v) for row, kind, v, _ in read.rows), want):
            problems.append((b, f"{name} CDF({a}..{b}) != delta-rs CDF: {diff}"))
    return problems


def check_commits_accounted_for(
    model_versions: int,
    commits: Mapping[int, object],
    missing: list[int],
    outside: list[str],
    acknowledged: Mapping[str, int],
    found: Mapping[str, list[int]],
    despite_error: Sequence[str] = (),
) -> Invariant:
    """The log as a ledger of the workload's commits (Jepsen's acknowledged writes, for a table). Commits of ops
    that got an error are the workload's too (an indeterminate write that landed): named, not a problem."""
    problems: list[Problem] = []
    problems += [(v, f"commit file of v{v} is missing from _delta_log") for v in missing[:1]]
    if len(missing) > 1:
        problems.append((missing[1], f"{len(missing)} commit files missing in all: versions {missing[:10]}"))
    problems += [(int(text[1:].split()[0]), f"not made by this workload: {text}") for text in outside]
    lost = sorted(tag for tag in acknowledged if tag not in found)
    if lost:
        problems.append((model_versions, f"{len(lost)} acknowledged commit(s) not in the log: {lost[:5]}"))
    twice = {tag: vs for tag, vs in found.items() if len(vs) > 1}
    for tag, versions in sorted(twice.items())[:SHOWN]:
        problems.append((versions[1], f"commit {tag} is in the log {len(versions)} times: versions {versions}"))
    summary = f"{len(commits)} commit files, {len(acknowledged)} acknowledged commits"
    if not problems:
        summary += ", each in the log once, none from outside"
    if despite_error:
        summary += f"; {len(despite_error)} more landed although their writer got an error: {despite_error[0]}"
    facts = {"commits": len(commits), "outside": len(outside), "missing": len(missing), "lost": len(lost)}
    return _verdict(COMMITS_ACCOUNTED, problems, summary, facts, len(commits))


def _verdict(name: str, problems: list[Problem], summary: str, facts: dict, judged: int) -> Invariant:
    if not problems and judged == 0:
        problems = [(0, "nothing could be judged")]
    if problems:
        texts = [text for _, text in problems]
        more = f" (+{len(texts) - SHOWN} more)" if len(texts) > SHOWN else ""
        detail = f"{len(texts)} problem(s): " + " | ".join(texts[:SHOWN]) + more + f". {summary}"
        first = min(version for version, _ in problems)
        return Invariant(name, False, detail, {**facts, "problems": len(texts), "first_version": first})
    return Invariant(name, True, summary, {**facts, "problems": 0})
