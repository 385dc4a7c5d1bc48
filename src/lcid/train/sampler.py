"""Data order that is a pure function of (seed, epoch), so a resumed run sees the same batches."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochPermutationSampler(Sampler[int]):
    """A fresh random permutation of ``range(n)`` per epoch, seeded by ``(seed, epoch)``.

    Unlike ``RandomSampler`` it does not draw from the global random state, so the order
    does not depend on what else consumed random numbers; accelerate's data loader calls
    :meth:`set_epoch` for it (also when it shards batches across processes).

    Examples
    --------
    >>> s = EpochPermutationSampler(5, seed=1); s.set_epoch(3); a = list(s)
    >>> s2 = EpochPermutationSampler(5, seed=1); s2.set_epoch(3); a == list(s2)
    True
    """

    def __init__(self, n: int, *, seed: int) -> None:
        self.n = int(n)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=generator).tolist())
