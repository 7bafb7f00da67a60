"""Training on several processes: PyTorch's DistributedDataParallel, launched by ``torchrun``.

``torchrun --nproc_per_node=N -m ser_export build ...`` starts N copies of the build with
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous (``MASTER_ADDR``/``MASTER_PORT``)
in their environment.  :meth:`Distributed.from_env` reads them; a plain
``python -m ser_export build`` has none and is one process, whose code path (and release) is
exactly the single-process one.  The process group uses ``gloo`` on CPU and ``nccl`` where
CUDA is present (each process then trains on ``cuda:LOCAL_RANK``).
"""
from __future__ import annotations

import dataclasses
import datetime
import os
from typing import Mapping, Sequence

import torch

from .errors import SerExportError

#: How long a process waits for the others at a collective (rank 0 exports a model while the
#: others wait to train the next one).
TIMEOUT = datetime.timedelta(minutes=60)


@dataclasses.dataclass(frozen=True)
class Distributed:
    """This process's place in a ``torchrun`` job (rank 0 of 1 when not launched by it)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Distributed":
        env = os.environ if env is None else env
        if "WORLD_SIZE" not in env:
            return cls()
        try:
            rank, world, local = (int(env.get(k, "0")) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
        except ValueError:
            raise SerExportError(f"RANK={env.get('RANK')!r}, WORLD_SIZE={env.get('WORLD_SIZE')!r}, "
                                 f"LOCAL_RANK={env.get('LOCAL_RANK')!r}: not integers (launch with torchrun)") from None
        if world < 1 or not 0 <= rank < world or local < 0:
            raise SerExportError(f"RANK={rank} WORLD_SIZE={world} LOCAL_RANK={local} do not describe a process "
                                 f"of the job (launch with torchrun)")
        return cls(rank, world, local)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes the release."""
        return self.rank == 0

    @property
    def backend(self) -> str:
        return "nccl" if torch.cuda.is_available() else "gloo"

    @property
    def device(self) -> torch.device:
        """Where this process trains: ``cuda:LOCAL_RANK`` under nccl, else the CPU."""
        if self.enabled and self.backend == "nccl":
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    def start(self) -> None:
        """Join the process group (nothing for one process)."""
        if not self.enabled or torch.distributed.is_initialized():
            return
        if self.backend == "nccl":
            torch.cuda.set_device(self.local_rank)
        torch.distributed.init_process_group(self.backend, rank=self.rank, world_size=self.world_size,
                                             timeout=TIMEOUT)

    def stop(self) -> None:
        if self.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()

    def barrier(self) -> None:
        """Wait until every process gets here."""
        if self.enabled:
            torch.distributed.barrier()

    def sum(self, values: Sequence[float]) -> list[float]:
        """``values`` summed over the processes (float64; themselves for one process)."""
        if not self.enabled:
            return [float(v) for v in values]
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t)
        return [float(v) for v in t.cpu()]

    def gather_objects(self, value) -> list:
        """Every process's ``value`` (picklable), in rank order (``[value]`` for one process)."""
        if not self.enabled:
            return [value]
        out = [None] * self.world_size
        torch.distributed.all_gather_object(out, value)
        return out

    def from_main(self, value: float) -> float:
        """Rank 0's ``value`` on every process (a decision all must take alike, e.g. early stopping)."""
        if not self.enabled:
            return float(value)
        t = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        torch.distributed.broadcast(t, src=0)
        return float(t.item())

    def sync_buffers(self, module: torch.nn.Module) -> None:
        """Rank 0's buffers (batch-norm running statistics) on every process: each process's last local
        batch moved its own, and validation must see one model."""
        if not self.enabled:
            return
        for buf in module.buffers():
            torch.distributed.broadcast(buf.data, src=0)

    def shard_order(self, n: int, seed: int, epoch: int) -> torch.Tensor:
        """This process's part of epoch ``epoch``'s shuffled order of ``n`` examples (``DistributedSampler``:
        every process draws the same permutation and keeps every ``world_size``-th index, padded so that all
        parts have the same length)."""
        from torch.utils.data import DistributedSampler

        sampler = DistributedSampler(range(n), num_replicas=self.world_size, rank=self.rank, shuffle=True,
                                     seed=seed, drop_last=False)
        sampler.set_epoch(epoch)
        return torch.tensor(list(iter(sampler)), dtype=torch.long)
