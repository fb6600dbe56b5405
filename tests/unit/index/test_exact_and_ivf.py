"""Unit tests shared by the exact and IVF item indexes, checked against brute force."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from index.base import ItemIndex
from index.errors import ItemIndexError
from index.factory import make_index
from index.ivf import IVFIndex

N_ITEMS = 400  # enough for an IVF build with 8 lists (8 * 39 training points)
DIM = 8
K = 10

# "ivf-coded": the IVF searched through PQ codes (from any size), then re-scored exactly
KINDS = ["exact", "ivf", "ivf-coded"]


def _index(kind: str) -> ItemIndex:
    if kind == "ivf-coded":
        return make_index("ivf", nlist=8, nprobe=8, coded_from=0)
    return make_index(kind, nlist=8, nprobe=8)


def _ready(index: ItemIndex, items: torch.Tensor) -> None:
    """First refresh; for IVF, wait for the background build and swap it in."""
    index.refresh(items, torch.arange(items.shape[0], device=items.device))
    if isinstance(index, IVFIndex):
        index.wait_for_build()
        index.refresh(items, torch.empty(0, dtype=torch.int64, device=items.device))
        assert index.builds == 1
        assert index.built_at > 0


def _data(device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    items = torch.randn(N_ITEMS, DIM, generator=generator)
    queries = torch.randn(6, DIM, generator=generator)
    return items.to(device), queries.to(device)


def _assert_exact(
    scores: torch.Tensor, rows: torch.Tensor, queries: torch.Tensor, items: torch.Tensor, k: int
) -> None:
    """Same rows as brute force (up to exact ties), true scores, sorted best first."""
    reference = (queries.double() @ items.double().T).cpu()
    scores, rows = scores.cpu(), rows.cpu()
    assert scores.shape == rows.shape == (queries.shape[0], k)
    ref_scores, ref_rows = reference.topk(min(k + 1, reference.shape[1]), dim=1)
    for n in range(queries.shape[0]):
        assert rows[n].unique().numel() == k
        # Each returned score is the live score of its row.
        torch.testing.assert_close(scores[n].double(), reference[n, rows[n]], atol=1e-5, rtol=1e-5)
        clear_cut = k == reference.shape[1] or ref_scores[n, k - 1] - ref_scores[n, k] > 1e-4
        if clear_cut:
            assert set(rows[n].tolist()) == set(ref_rows[n, :k].tolist())
    torch.testing.assert_close(scores.double(), ref_scores[:, :k], atol=1e-5, rtol=1e-5)
    assert (scores[:, :-1] >= scores[:, 1:]).all()


@pytest.mark.parametrize("kind", KINDS)
def test_top_k_matches_brute_force(kind: str, device: torch.device) -> None:
    """With every list probed, every index returns the exact top-k, best first.

    The coded IVF too: its codes choose 128 of the 400 rows, re-scored exactly.
    """
    items, queries = _data(device)
    index = _index(kind)
    _ready(index, items)
    if kind == "ivf-coded" and device.type == "cpu":
        assert isinstance(index, IVFIndex)
        assert index.coded  # a device's build stays IVF-Flat
    scores, rows = index.search(queries, K)
    _assert_exact(scores, rows, queries, items, K)
    index.close()


@pytest.mark.parametrize("kind", KINDS)
def test_k_beyond_the_catalogue_is_clamped(kind: str, device: torch.device) -> None:
    """Asking for more rows than exist returns every row once, sorted."""
    items, queries = _data(device)
    index = _index(kind)
    _ready(index, items)
    scores, rows = index.search(queries, N_ITEMS + 50)
    assert rows.shape == (queries.shape[0], N_ITEMS)
    _assert_exact(scores, rows, queries, items, N_ITEMS)
    index.close()


@pytest.mark.parametrize("kind", KINDS)
def test_in_place_update_is_visible_at_once(kind: str, device: torch.device) -> None:
    """A row changed in place and passed to `refresh` is searched with its new vector."""
    items, queries = _data(device)
    index = _index(kind)
    _ready(index, items)
    boosted = torch.tensor([17, 250], device=device)
    items[17] = queries[0] * 100.0
    items[250] = queries[1] * 100.0
    index.refresh(items, boosted)
    scores, rows = index.search(queries, K)
    assert rows[0, 0].item() == 17
    assert rows[1, 0].item() == 250
    _assert_exact(scores, rows, queries, items, K)
    index.close()


@pytest.mark.parametrize("kind", KINDS)
def test_demoted_rows_give_way_to_the_next_best(kind: str, device: torch.device) -> None:
    """After the best rows are pushed down in place, the next-best rows take their places."""
    items, queries = _data(device)
    index = _index(kind)
    _ready(index, items)
    best = (queries[:1] @ items.T).topk(K, dim=1).indices[0]
    items[best] = -queries[0] * 5.0
    index.refresh(items, best)
    scores, rows = index.search(queries, K)
    _assert_exact(scores, rows, queries, items, K)
    index.close()


@pytest.mark.parametrize("kind", KINDS)
def test_rows_appended_after_the_snapshot_are_found(kind: str, device: torch.device) -> None:
    """Rows added after the index was built are searched exactly beside it."""
    items, queries = _data(device)
    index = _index(kind)
    _ready(index, items)
    extra = torch.zeros(5, DIM, device=device)
    extra[3] = queries[2] * 100.0
    grown = torch.cat([items, extra])
    index.refresh(grown, torch.arange(N_ITEMS, N_ITEMS + 5, device=device))
    scores, rows = index.search(queries, K)
    assert rows[2, 0].item() == N_ITEMS + 3
    _assert_exact(scores, rows, queries, grown, K)
    index.close()


@pytest.mark.parametrize("kind", KINDS)
def test_version_counts_refreshes_that_change_rows(kind: str, device: torch.device) -> None:
    """`version` goes up when rows changed and stays put on an empty refresh."""
    items, _ = _data(device)
    index = _index(kind)
    _ready(index, items)
    start = index.version
    assert start >= 1
    index.refresh(items, torch.tensor([3], device=device))
    assert index.version > start
    after = index.version
    index.refresh(items, torch.empty(0, dtype=torch.int64, device=device))
    assert index.version == after
    index.close()


@pytest.mark.parametrize("kind", KINDS)
def test_search_before_first_refresh_raises(kind: str) -> None:
    """An index that never saw the item matrix refuses to search."""
    index = _index(kind)
    with pytest.raises(ItemIndexError, match="before its first refresh"):
        index.search(torch.zeros(1, DIM), K)


def test_unknown_index_kind_raises() -> None:
    """`make_index` names the kinds it knows when given another."""
    with pytest.raises(ItemIndexError, match="unknown index kind 'nope'"):
        make_index("nope")


def _rebuild(index: IVFIndex, items: torch.Tensor) -> None:
    """Start a build now (past `refresh_s` and any pace) and swap it in."""
    index._last_start = -1e9  # as if the last build started long ago
    index.refresh(items, torch.arange(items.shape[0]))
    index.wait_for_build()
    index.refresh(items, torch.empty(0, dtype=torch.int64))


@pytest.mark.parametrize("coded_from", [10**9, 0], ids=["flat", "coded"])
def test_builds_reuse_the_centroids_until_retraining_is_due(coded_from: int) -> None:
    """Builds between trainings only reassign: searches stay exact on the live vectors.

    Coded, the codebooks are reused with the centroids: the new vectors are encoded.
    """
    index = IVFIndex(
        nlist=8, nprobe=8, refresh_s=1e9, use_gpu=False, retrain_every=3, coded_from=coded_from
    )
    items, queries = _data(torch.device("cpu"))
    _ready(index, items)
    assert index.trainings == 1
    moved = items + 0.01 * torch.randn_like(items)
    _rebuild(index, moved)
    _rebuild(index, moved)
    assert (index.builds, index.trainings) == (3, 1)  # two builds only reassigned
    assert index.coded == (coded_from == 0)
    scores, rows = index.search(queries, K)
    _assert_exact(scores, rows, queries, moved, K)  # reused centroids, live vectors, exact
    _rebuild(index, moved)
    assert (index.builds, index.trainings) == (4, 2)  # the third reuse trains again


def test_a_catalogue_that_doubled_trains_new_centroids() -> None:
    """Centroids trained on a third of today's catalogue are not reused."""
    index = IVFIndex(nlist=8, nprobe=8, refresh_s=1e9, use_gpu=False)
    items, _ = _data(torch.device("cpu"))
    _ready(index, items)
    _rebuild(index, torch.cat([items, items + 0.5, items - 0.5]))
    assert index.trainings == 2


def test_the_next_build_waits_for_a_multiple_of_the_last_ones_duration() -> None:
    """A build that took an hour holds the next back past `refresh_s`; a quick one does not."""
    index = IVFIndex(nlist=8, nprobe=8, refresh_s=1e9, use_gpu=False)
    items, _ = _data(torch.device("cpu"))
    _ready(index, items)  # no second build yet, however slow the machine
    index.refresh_s = 0.0  # from now on every refresh finds a build due by the clock
    built = index._built
    assert built is not None
    index._built = dataclasses.replace(built, seconds=3600.0)  # as if it had taken an hour
    index.refresh(items, torch.arange(10))
    index.wait_for_build()
    assert index._finished is None  # due by refresh_s=0, held back by the pace
    index._built = dataclasses.replace(built, seconds=0.0)
    index.refresh(items, torch.arange(10))
    index.wait_for_build()
    index.refresh(items, torch.empty(0, dtype=torch.int64))
    assert index.builds == 2


def test_many_rows_changed_since_the_build_still_search_the_ivf() -> None:
    """Between builds every clicked item goes stale: the IVF is still searched, not a full scan.

    The fetch grew with the stale rows and passed `GPU_MAX_K`, so a busy catalogue
    fell back to an exact scan of every item within a minute of each build.
    """
    index = IVFIndex(nlist=8, nprobe=8, refresh_s=1e9, use_gpu=False)
    items, queries = _data(torch.device("cpu"))
    _ready(index, items)
    built = index._built
    assert built is not None
    asked: list[int] = []
    search = built.index.search

    def counting(probe: object, k: int) -> object:
        asked.append(k)
        return search(probe, k)

    built.index.search = counting
    changed = torch.arange(0, N_ITEMS, 3)  # a third of the catalogue: the old fetch was k + 134
    items[changed] = torch.randn(changed.numel(), DIM, generator=torch.Generator().manual_seed(9))
    index.refresh(items, changed)
    scores, rows = index.search(queries, K)
    assert asked == [2 * K]
    _assert_exact(scores, rows, queries, items, K)
