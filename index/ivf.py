"""An IVF index built off the hot path from a snapshot, swapped in atomically.

FAISS GPU indexes cannot remove vectors, and a flat GPU index cannot add with
ids, so this index never mutates: a background thread trains and fills a new
IVF from a copy of the item matrix, and the loop thread swaps it in between
searches. Rows changed since the snapshot (or added after it) are searched
exactly beside the IVF and merged; IVF candidates are re-scored with the live
vectors, so no stale score ever reaches a list.

A build is paced by its own cost: the next starts no sooner than `BUILD_PACE`
times the last one's duration, so on a small machine a catalogue whose build
outlasts `refresh_s` takes at most ~1/(1 + BUILD_PACE) of a core instead of
rebuilding back to back beside the loop. Most builds reuse the last trained
centroids and only reassign the vectors (k-means is ~25 such passes); the
centroids are trained again every `retrain_every` builds, or once the catalogue
has doubled since, so they follow the vectors' drift.

A large catalogue on the CPU (`coded_from` items and up) is searched through
4-bit product-quantised codes with FAISS's fast scan (`IndexIVFPQFastScan`,
two dimensions per code): an IVF-Flat scan reads every probed list's floats,
260 bytes an item, and at 10^6 items that cost 590 ms per 1,024 queries on
2 shared cores, against 98 ms for the codes (17 bytes an item). The codes only
choose: `REFINE` times the asked-for rows are fetched and re-scored exactly
with the live vectors, as every IVF candidate is, which kept 98.5 % of
IVF-Flat's top 50 on clustered items (docs/benchmarks.md, 2026-12-07).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import cast

import faiss
import numpy as np
import torch

from index.errors import ItemIndexError
from index.gpu_ann import build_cagra, choose_build, search_cagra
from index.knn import GPU_MAX_K, HAS_FAISS_GPU, knn, row_scores
from models.growth import grown_capacity

_TRAIN_POINTS_PER_LIST = 39  # FAISS warns below this many training points per centroid
BUILD_PACE = 4.0  # the next build waits at least this many times the last one's duration
RETRAIN_EVERY = 8  # builds: train new centroids at every this many, reuse them in between
CODED_FROM = 200_000  # items: a CPU build at least this large is searched through PQ codes
REFINE = 2  # a coded search fetches this many times the rows asked for, then re-scores them
REFINE_AT_LEAST = 128  # ... and at least this many: few rows asked for leave codes' ties out


@dataclass(frozen=True)
class _Built:
    """One finished background build: the FAISS index, the rows it covers and how it was made."""

    index: faiss.Index
    rows: int
    started_at: float
    on_gpu: bool
    build: str = "ivf-cpu"  # `index.gpu_ann.choose_build`: cagra, ivf-gpu or ivf-cpu
    seconds: float = 0.0  # how long the build took
    coded: bool = False  # searched through PQ codes of vectors padded to an even width


@dataclass(frozen=True)
class _Trained:
    """Trained centroids with no vectors (a FAISS CPU IVF), for builds that only reassign."""

    empty: faiss.Index
    rows: int  # catalogue size they were trained on
    uses: int = 0  # builds that reused them
    coded: bool = False  # an IVF-PQ fast-scan index (its codebooks trained too)


class IVFIndex:
    """IVF-Flat over a snapshot plus exact search over what changed since."""

    kind = "ivf"

    def __init__(
        self,
        *,
        nlist: int = 0,
        nprobe: int = 16,
        refresh_s: float = 30.0,
        refresh_updates: int = 100_000,
        use_gpu: bool = True,
        retrain_every: int = RETRAIN_EVERY,
        coded_from: int = CODED_FROM,
    ) -> None:
        """Configure; `nlist=0` picks about 4·√n lists at each training.

        `coded_from`: a CPU build of at least this many items is searched through
        PQ codes, then re-scored (the module's docstring).
        """
        self.coded_from = coded_from
        self.nlist = nlist
        self.retrain_every = max(1, retrain_every)
        self.trainings = 0
        self._trained: _Trained | None = None
        self.nprobe = nprobe
        self.refresh_s = refresh_s
        self.refresh_updates = refresh_updates
        self.use_gpu = use_gpu
        self.version = 0
        self.builds = 0
        self._items: torch.Tensor | None = None
        self._built: _Built | None = None
        self._dirty = torch.zeros(0, dtype=torch.bool)
        self._dirty_since_snapshot = torch.zeros(0, dtype=torch.bool)
        self._updates_since_build = 0
        self._last_start = 0.0
        self._lock = threading.Lock()
        self._finished: _Built | None = None
        self._builder: threading.Thread | None = None
        self._build_error: BaseException | None = None

    @property
    def built_at(self) -> float:
        """When the snapshot behind the live IVF was taken (0 before the first)."""
        return self._built.started_at if self._built else 0.0

    def _grow(self, mask: torch.Tensor, rows: int, device: torch.device) -> torch.Tensor:
        if mask.device != device:
            mask = mask.to(device)
        if mask.shape[0] >= rows:
            return mask
        grown = torch.zeros(
            grown_capacity(mask.shape[0], rows, None), dtype=torch.bool, device=device
        )
        grown[: mask.shape[0]] = mask
        return grown

    def refresh(self, items: torch.Tensor, updated_rows: torch.Tensor) -> None:
        """Record changed rows, swap in a finished build, start a new one when due."""
        if self._build_error is not None:
            error, self._build_error = self._build_error, None
            raise ItemIndexError(f"IVF build failed: {error}") from error
        self._items = items
        rows = int(items.shape[0])
        self._dirty = self._grow(self._dirty, rows, items.device)
        self._dirty_since_snapshot = self._grow(self._dirty_since_snapshot, rows, items.device)
        if updated_rows.numel() or self.version == 0:
            self._dirty[updated_rows] = True
            self._dirty_since_snapshot[updated_rows] = True
            self._updates_since_build += int(updated_rows.numel())
            self.version += 1
        with self._lock:
            finished, self._finished = self._finished, None
        if finished is not None:
            self._built = finished
            self._dirty, self._dirty_since_snapshot = (
                self._dirty_since_snapshot,
                torch.zeros_like(self._dirty_since_snapshot),
            )
            self.version += 1
            self.builds += 1
        if self._due(rows):
            self._start_build(items)

    def _due(self, rows: int) -> bool:
        if self._builder is not None and self._builder.is_alive():
            return False
        if rows < max(self._lists_for(rows), 1) * _TRAIN_POINTS_PER_LIST:
            return False
        if self._built is None:
            return True
        elapsed = time.monotonic() - self._last_start
        if elapsed < BUILD_PACE * self._built.seconds:
            return False
        return elapsed >= self.refresh_s or self._updates_since_build >= self.refresh_updates

    def _lists_for(self, rows: int) -> int:
        return self.nlist or max(1, int(4 * math.sqrt(rows)))

    def _start_build(self, items: torch.Tensor) -> None:
        snapshot = items.detach().float().cpu().numpy().copy()
        self._dirty_since_snapshot.zero_()
        self._updates_since_build = 0
        self._last_start = time.monotonic()
        started_at = time.time()
        gpu = self.use_gpu and HAS_FAISS_GPU and items.device.type == "cuda"
        gpu_id = items.device.index if items.device.index is not None else 0

        plan = choose_build(faiss, gpu=gpu, rows=snapshot.shape[0])

        def build() -> None:
            clock = time.monotonic()
            coded = plan == "ivf-cpu" and snapshot.shape[0] >= self.coded_from
            try:
                if plan == "cagra":
                    built = cast("faiss.Index", build_cagra(faiss, snapshot, gpu_id))
                else:
                    built = self._build(snapshot, plan == "ivf-gpu", gpu_id, coded)
            except Exception as exc:  # noqa: BLE001  (surfaced on the loop thread at refresh)
                self._build_error = exc
                return
            seconds = time.monotonic() - clock
            with self._lock:
                self._finished = _Built(
                    built, snapshot.shape[0], started_at, plan != "ivf-cpu", plan, seconds, coded
                )

        self._builder = threading.Thread(target=build, name="recstream-ivf-build", daemon=True)
        self._builder.start()

    def _build(
        self, snapshot: np.ndarray, gpu: bool, gpu_id: int = 0, coded: bool = False
    ) -> faiss.Index:
        if coded:
            snapshot = _even_width(snapshot)
        index = cast("faiss.IndexIVF", faiss.clone_index(self._centroids(snapshot, coded)))
        index.add(snapshot)
        index.nprobe = self.nprobe
        if gpu:
            res = faiss.StandardGpuResources()
            on_gpu: faiss.Index = faiss.index_cpu_to_gpu(res, gpu_id, index)
            # The GPU index must not outlive its resources: tie them together.
            on_gpu.referenced_resources = res  # type: ignore[attr-defined]
            return on_gpu
        return index

    def _centroids(self, snapshot: np.ndarray, coded: bool = False) -> faiss.Index:
        """An empty IVF with trained centroids: the last ones, or new ones when they are due.

        `coded`: an IVF-PQ fast-scan index, 4 bits per two dimensions (`snapshot`'s
        width must be even). Runs on the build thread, the only writer of `_trained`.
        """
        rows, dim = snapshot.shape
        trained = self._trained
        if (
            trained is not None
            and trained.empty.d == dim
            and trained.coded == coded
            and trained.uses + 1 < self.retrain_every
            and rows <= 2 * trained.rows
        ):
            self._trained = _Trained(trained.empty, trained.rows, trained.uses + 1, coded)
            return trained.empty
        quantizer = faiss.IndexFlatIP(dim)
        lists = self._lists_for(rows)
        index: faiss.IndexIVF = (
            faiss.IndexIVFPQFastScan(quantizer, dim, lists, dim // 2, 4)
            if coded
            else faiss.IndexIVFFlat(quantizer, dim, lists)
        )
        # Set after construction on purpose: the constructor's METRIC_INNER_PRODUCT also turns
        # on spherical k-means (unit centroids), which crowds the lists together when vectors
        # point one way from the origin and costs recall, while no form gains on centred ones
        # (tests/unit/index/test_ivf_recall; docs/benchmarks.md, "Figures behind the code").
        # Plain k-means centroids, assigned and searched by inner product, keep it.
        index.metric_type = faiss.METRIC_INNER_PRODUCT
        # Codes of each item's residual from its list's centroid, not of the item: set after
        # the metric, which leaves it off (clustered items: 0.80 against 0.30 of the exact
        # top 10 kept at twice the fetch, tests/unit/index/test_ivf_recall.py).
        index.by_residual = coded
        index.train(snapshot)
        self._trained = _Trained(index, rows, coded=coded)
        self.trainings += 1
        return index

    def wait_for_build(self, timeout: float = 60.0) -> None:
        """Block until a started build finishes (tests and benchmarks)."""
        if self._builder is not None:
            self._builder.join(timeout)

    @property
    def coded(self) -> bool:
        """Whether the live build is searched through PQ codes (then re-scored)."""
        return self._built is not None and self._built.coded

    def dense_scores(self, queries: torch.Tensor) -> torch.Tensor | None:  # noqa: ARG002
        """Never: the IVF index exists because the catalogue is too large for that."""
        return None

    def search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-`k` over the IVF snapshot and the rows changed since, merged exactly."""
        items = self._items
        if items is None:
            raise ItemIndexError("index searched before its first refresh")
        rows = int(items.shape[0])
        k = min(k, rows)
        built = self._built
        if built is None:
            return knn(queries, items, k)
        stale = self._dirty[:rows].clone()
        stale[built.rows :] = True
        stale_rows = stale.nonzero().squeeze(1)
        # Stale rows among the snapshot's candidates are dropped (the exact search over the
        # stale rows finds them where they are now), so ask for that many more, up to k
        # more: between builds every clicked item goes stale, and a fetch that grew with
        # them would fall back to an exact scan of the catalogue within a minute.
        stale_in_snapshot = int(stale[: built.rows].sum())
        fetch = k + min(stale_in_snapshot, k)
        if built.coded:
            fetch = max(fetch * REFINE, REFINE_AT_LEAST)
        fetch = min(fetch, built.rows)
        if stale_rows.numel() * 2 > rows or fetch > GPU_MAX_K:
            return knn(queries, items, k)
        probe = queries.float().contiguous()
        if built.build == "cagra":
            found: object = search_cagra(faiss, built.index, probe.cpu().numpy(), fetch)[1]
        else:
            if not built.on_gpu:
                probe = probe.cpu()
            if built.coded:
                probe = torch.from_numpy(_even_width(probe.numpy()))
            found = built.index.search(probe, fetch)[1]
        cand = torch.as_tensor(found, device=items.device)
        missing = cand < 0
        cand_rows = cand.clamp(min=0)
        scores = torch.einsum("bd,bkd->bk", queries.float(), items[cand_rows].float())
        scores = scores.masked_fill(missing | stale[cand_rows], float("-inf"))
        if stale_rows.numel():
            extra_scores, extra = knn(queries, items[stale_rows], min(k, stale_rows.numel()))
            scores = torch.cat([scores, extra_scores], dim=1)
            cand_rows = torch.cat([cand_rows, stale_rows[extra]], dim=1)
        top, pick = scores.topk(k, dim=1)
        best = cand_rows.gather(1, pick).masked_fill(torch.isinf(top), -1)
        return top, best

    def score_rows(self, queries: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Exact scores of the given item rows per query (candidates from elsewhere)."""
        if self._items is None:
            raise ItemIndexError("index searched before its first refresh")
        return row_scores(queries, self._items, rows)

    def close(self) -> None:
        """Let a running build finish so its thread does not outlive the process state."""
        self.wait_for_build()


def _even_width(vectors: np.ndarray) -> np.ndarray:
    """`vectors` with a zero column appended when their width is odd (PQ codes take pairs)."""
    if vectors.shape[1] % 2 == 0:
        return vectors
    return np.pad(vectors, ((0, 0), (0, 1)))
