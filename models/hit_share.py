"""A mixture's share picked by the hits it would have had in a top-K list.

A list is read as its top K, not as a distribution. EM (`models.mixture`) finds
the share under which the clicked items are likeliest, and for popularity's share
between sessions that is the wrong question: on both MovieLens files it stayed
near its start (0.39-0.41), while their lists read after a pause want 0.1 on
ml-latest-small (long-horizon HR@10 0.7447, against 0.7181 at 0.4) and 0.4 or more
on ml-100k (0.7641, against 0.7335 at 0.2). So each labelled click is ranked under
every share on a grid, and a kept list counts as a hit for a share once any of its
later clicks would have been in that share's top K: the long horizon's own measure
(counting clicks instead picked 0.3 on ml-100k, whose long horizon then fell to
0.7493). Decayed counts over ended lists keep each share's hits, and the share with
the most is used. Nothing is read back to the host.
"""

from __future__ import annotations

import torch

from models.state import StateDict, number, tensor

GRID = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


class HitShare:
    """The weight `s` of a mixture's second component, as a 0-dim device tensor."""

    SHARED = ("hits", "labels")  # what `shared` sends

    def __init__(
        self,
        start: float,
        device: torch.device,
        top_k: int,
        lists: int,
        *,
        grid: tuple[float, ...] = GRID,
        memory: float = 20_000.0,
        least: float = 200.0,
    ) -> None:
        """Start at `start` (added to the grid); the grid's best once `least` lists ended.

        `lists` is how many lists may be open at once (the slots of their store). The
        counts remember about `memory` lists. The start wins ties (by half a hit), so
        a share does not wander among equally good ones.
        """
        if not 0 <= start < 1 or top_k < 1:
            raise ValueError(f"need a share in [0, 1) and top_k >= 1, got {start}, {top_k}")
        shares = sorted({*grid, start})
        self.device, self.top_k, self.least = device, top_k, least
        self.grid = torch.tensor(shares, device=device)
        self.tie = torch.zeros(len(shares), device=device)
        self.tie[shares.index(start)] = 0.5
        self.log_decay = -1.0 / memory  # per label
        self.hits = torch.zeros(len(shares), device=device)  # decayed hits per share
        self.labels = torch.zeros((), device=device)  # decayed count of ended, labelled lists
        self.open_hits = torch.zeros(lists, len(shares), device=device)  # per open list
        self.open_clicks = torch.zeros(lists, device=device)
        self._start = torch.tensor(start, device=device)  # made once: no copy per update
        self.value = self._start

    def learn(
        self,
        first: torch.Tensor,
        second: torch.Tensor,
        positive: torch.Tensor,
        lists: torch.Tensor,
    ) -> None:
        """Note which shares would have named each labelled click, per open list.

        `first` and `second` are `[rows, n]` log-probabilities of the two components
        (`-inf`: no candidate), `positive` `[rows]` the clicked column (`-1`: not
        among them), `lists` `[rows]` the open list each click labels. A click not
        among the candidates counts as a miss; rows where `second` holds no mass
        are skipped. The counts move when the lists end (`settle`).
        """
        with torch.no_grad():
            share = self.grid.view(-1, 1, 1)
            mixed = torch.logaddexp(first + torch.log1p(-share), second + torch.log(share))
            column = positive.clamp(min=0).view(1, -1, 1).expand(len(self.grid), -1, 1)
            clicked = mixed.gather(2, column)
            ahead = (mixed > clicked).sum(2)  # [shares, rows]
            counted = torch.isfinite(second).any(1)
            found = (positive >= 0) & torch.isfinite(clicked.squeeze(2)) & counted
            hit = (ahead < self.top_k) & found
            self.open_hits.index_add_(0, lists, hit.T.to(self.open_hits.dtype))
            self.open_clicks.index_add_(0, lists, counted.to(self.open_clicks.dtype))

    def settle(self, lists: torch.Tensor) -> None:
        """Lists that ended: each labelled one is a hit for every share that named a click."""
        if not lists.numel():
            return
        with torch.no_grad():
            labelled = self.open_clicks[lists] > 0
            hit = (self.open_hits[lists] > 0) & labelled.unsqueeze(1)
            n = labelled.sum()
            keep = torch.exp(n * self.log_decay)
            self.hits.mul_(keep).add_(hit.sum(0))
            self.labels.mul_(keep).add_(n)
            self.open_hits[lists] = 0.0
            self.open_clicks[lists] = 0.0
            self._update()

    def _update(self) -> None:
        best = self.grid[torch.argmax(self.hits + self.tie)]
        self.value = torch.where(self.labels >= self.least, best, self._start)

    def state_dict(self) -> StateDict:
        """The decayed counts and the grid they were counted on."""
        return {"grid": self.grid.cpu(), "hits": self.hits.cpu(), "labels": float(self.labels)}

    def load_state_dict(self, state: StateDict) -> None:
        """Restore `state_dict()` output; counts on another grid are not ours, and start afresh."""
        grid = tensor(state, "grid", (None,), torch.float32)
        if grid.shape == self.grid.shape and torch.allclose(grid.to(self.device), self.grid):
            self.hits.copy_(tensor(state, "hits", tuple(self.grid.shape), torch.float32))
            self.labels.fill_(number(state, "labels"))
        self._update()

    def shared(self) -> dict[str, torch.Tensor]:
        """The decayed counts as host tensors, for other workers (`blend`)."""
        return {"hits": self.hits.cpu(), "labels": self.labels.cpu()}

    def blend(self, other: dict[str, torch.Tensor]) -> None:
        """Average another worker's counts into this one's (ignored if on another grid)."""
        if other["hits"].shape != self.hits.shape:
            return
        self.hits.add_(other["hits"].to(self.device)).mul_(0.5)
        self.labels.add_(other["labels"].to(self.device)).mul_(0.5)
        self._update()
