"""The pure logic of a dataset version: near-duplicate groups, the split, the content hash.

No database here: :func:`assign_splits` takes plain :class:`SplitItem` values and returns the
split of each, so the rules can be tested on their own (with hypothesis) and reused.

The split keeps near-duplicates on one side. Frames a device kept seconds apart usually
show the same part; one in train and its twin in test would flatter every evaluation. So
captures of one device whose times are each within ``near_window_s`` of the previous one
form a chain (a *group*), and whole groups are assigned.

Groups are stratified by their majority class. Within a class they are ordered by a hash of
the seed and the group's first capture (device uid and device capture id), never by database
ids or insertion order, and then filled into train, then val, then test, each up to its
share of the class's captures. Contiguous blocks rather than round-robin dealing: adding
captures later moves only the groups near a block boundary, so most samples keep their
split from one version to the next.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from app.core.errors import InvalidInput
from app.core.models.datasets import Split

DEFAULT_FRACTIONS: tuple[float, float, float] = (0.7, 0.15, 0.15)
DEFAULT_NEAR_WINDOW_S = 60.0
# A class needs this many groups before val and test are each promised one; with fewer,
# every group stays in train (a class the model never trains on cannot be evaluated anyway).
MIN_GROUPS_FOR_EVAL = 3
SPLITS: tuple[Split, Split, Split] = (Split.TRAIN, Split.VAL, Split.TEST)


@dataclass(frozen=True)
class SplitItem:
    """One labelled capture as the split sees it. ``key`` is returned with its split."""

    key: Hashable
    device: str
    device_capture_id: str
    captured_at: datetime
    label: str


@dataclass(frozen=True)
class Group:
    """Near-duplicate captures of one device, assigned to a split together."""

    items: tuple[SplitItem, ...]

    @property
    def first(self) -> SplitItem:
        return self.items[0]

    @property
    def size(self) -> int:
        return len(self.items)


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """Return ``fractions`` as (train, val, test) if they are usable, else :class:`InvalidInput`."""
    values = tuple(float(f) for f in fractions)
    if len(values) != 3:
        raise InvalidInput(f"split fractions must be three numbers (train, val, test), not {fractions!r}")
    if any(math.isnan(f) or f < 0 for f in values) or not math.isclose(sum(values), 1.0, abs_tol=1e-6):
        raise InvalidInput(
            f"split fractions {fractions!r} must be >= 0 and add up to 1, e.g. (0.7, 0.15, 0.15)"
        )
    if values[0] <= 0:
        raise InvalidInput("the train fraction must be above 0: a model needs something to learn from")
    return values  # type: ignore[return-value]


def check_window(near_window_s: float) -> float:
    """Return the near-duplicate window if usable (seconds, >= 0), else :class:`InvalidInput`."""
    if isinstance(near_window_s, bool) or not isinstance(near_window_s, (int, float)) \
            or math.isnan(near_window_s) or near_window_s < 0:
        raise InvalidInput(f"the near-duplicate window must be a number of seconds >= 0, "
                           f"not {near_window_s!r}")
    return float(near_window_s)


def near_duplicate_groups(items: Iterable[SplitItem], near_window_s: float) -> list[Group]:
    """Chain each device's captures in time: a gap above ``near_window_s`` starts a group.

    Two captures of the same device at most ``near_window_s`` apart always share a group
    (every capture between them is within the window of its neighbour, so the chain holds).
    """
    check_window(near_window_s)
    by_device: dict[str, list[SplitItem]] = defaultdict(list)
    for item in items:
        by_device[item.device].append(item)
    groups: list[Group] = []
    for device in sorted(by_device):
        ordered = sorted(by_device[device], key=lambda i: (i.captured_at, i.device_capture_id))
        chain = [ordered[0]]
        for previous, item in zip(ordered, ordered[1:]):
            if (item.captured_at - previous.captured_at).total_seconds() > near_window_s:
                groups.append(Group(tuple(chain)))
                chain = []
            chain.append(item)
        groups.append(Group(tuple(chain)))
    return groups


def group_order_key(seed: int, group: Group) -> str:
    """Where a group sorts for ``seed``: a hash of the seed and its first capture's name."""
    text = f"edgeloop-split/{seed}/{group.first.device}/{group.first.device_capture_id}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def majority_label(group: Group, overall: Counter[str]) -> str:
    """The group's most common label; a tie goes to the rarer class overall, then by name,
    so that small classes get every group they can."""
    counts = Counter(item.label for item in group.items)
    return min(counts, key=lambda label: (-counts[label], overall[label], label))


def _block_sizes(sizes: Sequence[int], fractions: tuple[float, float, float]) -> tuple[int, int]:
    """How many groups (in order) go to train, and to train + val, for one class.

    A group goes to the block in which its middle falls, so each block ends as close to its
    share of the class's captures as whole groups allow. Then small classes are mended: with
    at least :data:`MIN_GROUPS_FOR_EVAL` groups, train, val and test (where their fraction is
    above 0) each get at least one group; with fewer, all stay in train.
    """
    n, total = len(sizes), sum(sizes)
    if n < MIN_GROUPS_FOR_EVAL:
        return n, n
    train_end = fractions[0] * total
    val_end = (fractions[0] + fractions[1]) * total
    k_train = k_train_val = 0
    cumulative = 0
    for size in sizes:
        middle = cumulative + size / 2
        k_train += middle < train_end
        k_train_val += middle < val_end
        cumulative += size
    min_val = 1 if fractions[1] > 0 else 0
    min_test = 1 if fractions[2] > 0 else 0
    k_train = min(max(k_train, 1), n - min_val - min_test)
    k_train_val = min(max(k_train_val, k_train + min_val), n - min_test)
    return k_train, k_train_val


def assign_splits(
    items: Sequence[SplitItem],
    *,
    seed: int = 0,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    near_window_s: float = DEFAULT_NEAR_WINDOW_S,
) -> dict[Hashable, Split]:
    """The split of every item: deterministic in (items, seed), stratified, near-duplicates
    together (see the module docstring). The order of ``items`` does not matter."""
    shares = check_fractions(fractions)
    if not items:
        return {}
    overall = Counter(item.label for item in items)
    by_class: dict[str, list[Group]] = defaultdict(list)
    for group in near_duplicate_groups(items, near_window_s):
        by_class[majority_label(group, overall)].append(group)
    result: dict[Hashable, Split] = {}
    for label in sorted(by_class):
        ordered = sorted(by_class[label], key=lambda g: group_order_key(seed, g))
        k_train, k_train_val = _block_sizes([g.size for g in ordered], shares)
        for position, group in enumerate(ordered):
            split = (Split.TRAIN if position < k_train
                     else Split.VAL if position < k_train_val else Split.TEST)
            for item in group.items:
                result[item.key] = split
    return result


def content_hash(label_schema: Sequence[str], samples: Iterable[tuple[str, str, str, list[dict]]]) -> str:
    """The sha256 that names a version's content: its label schema, then one line per sample.

    ``samples`` are (blob sha256, class name, split value, boxes). Lines are sorted, so neither
    database ids nor row order matter; boxes are included (canonical JSON) because a frozen
    box is part of what a detector would learn from.
    """
    digest = hashlib.sha256()
    digest.update(("schema\t" + json.dumps(list(label_schema), ensure_ascii=False) + "\n").encode())
    lines = sorted(f"{sha}\t{label}\t{split}\t{_canonical_boxes(boxes)}\n"
                   for sha, label, split, boxes in samples)
    for line in lines:
        digest.update(line.encode("utf-8"))
    return digest.hexdigest()


def _canonical_boxes(boxes: list[dict]) -> str:
    # Numbers as rounded floats: the JSON columns of SQLite and PostgreSQL may hand back 2
    # for 2.0, and the hash must not depend on which database froze or reads the version.
    def value(v: object) -> object:
        return round(float(v), 4) if isinstance(v, (int, float)) and not isinstance(v, bool) else v

    canonical = [{key: value(v) for key, v in box.items()} for box in boxes]
    return json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
