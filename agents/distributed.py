"""Training on several processes with torch.distributed: one rank per GPU (NCCL), or per CPU process (gloo).

    torchrun --nproc_per_node=2 --no-python coohoi train task=carry_box engine=warp          # two GPUs
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=HOST:29400 --no-python coohoi train ...
    torchrun --nproc_per_node=2 --no-python coohoi train engine.num_envs=64                  # two CPU processes

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; `coohoi train` then:
- takes the backend from the engine's device (NCCL for cuda, gloo for the CPU: rl-games' own multi-GPU mode assumes
  NCCL and CUDA, so coohoi starts the process group itself and switches rl-games' gradient averaging on afterwards);
- gives rank r the device cuda:<LOCAL_RANK> (with a cuda engine device) and the seed `seed + r`, so each rank steps
  its own environments on its own random streams; engine.num_envs is per rank;
- starts every rank from rank 0's weights, averages gradients over the ranks at every optimiser step (both
  learners, the central value network of MAPPO included) and pools the observation, value and AMP normalisers'
  statistics after every update, so that every rank acts with the same policy; metrics log `dist/weight_spread`,
  the largest difference between any rank's weights (actor, critics, discriminator) and rank 0's (0 when in step);
- counts frames over all ranks; rank 0 alone measures the baselines, evaluates, prints, and writes checkpoints, logs
  and metrics (its episode metrics are its own environments'), and tells the others when to stop and the
  assistance level;
- stops every rank when one fails: torchrun ends the others when a rank exits with an error.

A resumed run restores the weights, optimisers, normalisers, counters and buffers of the checkpoint (rank 0's) on every
rank; rank 0 continues the checkpoint's random streams, the other ranks draw fresh ones (seed + rank + epoch).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Distributed:
    """This process's place among the ranks (a single process: rank 0 of 1, every operation a no-op)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: str = "cpu"  # where collectives' tensors live (NCCL needs them on the rank's GPU)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def broadcast_modules(self, *modules: torch.nn.Module | None) -> None:
        """Give every rank rank 0's parameters and buffers."""
        if not self.enabled:
            return
        import torch.distributed as dist

        for module in modules:
            if module is not None:
                for tensor in module.state_dict().values():
                    dist.broadcast(tensor, 0)

    def average_gradients(self, parameters) -> None:
        """Replace each gradient by its mean over the ranks (one all-reduce for all of them)."""
        if not self.enabled:
            return
        import torch.distributed as dist

        grads = [p.grad for p in parameters if p.grad is not None]
        if grads:
            flat = torch.cat([g.reshape(-1) for g in grads])
            dist.all_reduce(flat)
            flat /= self.world_size
            offset = 0
            for g in grads:
                g.copy_(flat[offset:offset + g.numel()].view_as(g))
                offset += g.numel()

    def sync_normalizers(self, *modules: torch.nn.Module | None) -> None:
        """Pool the running mean and variance of every normaliser in modules over the ranks (one all-reduce for all
        of them). Each rank started the update from the same statistics and added its own samples; the pooled mean
        and variance are those of the start plus all ranks' samples weighted as one rank's (the counts stay: every
        rank adds as many)."""
        if not self.enabled:
            return
        import torch.distributed as dist

        stats = []  # (module, mean, var) of every normaliser: rl-games' (running_mean, running_var) or ours
        for root in filter(None, modules):
            for m in root.modules():
                names = next((n for n in (("running_mean", "running_var"), ("mean", "var"))
                              if all(isinstance(getattr(m, a, None), torch.Tensor) for a in n)), None)
                if names is not None:
                    stats.append((m, getattr(m, names[0]), getattr(m, names[1])))
        if not stats:
            return
        moments = torch.cat([torch.cat((mean.reshape(-1), (var + mean.square()).reshape(-1)))
                             for _, mean, var in stats])
        dist.all_reduce(moments)
        moments /= self.world_size
        offset = 0
        for m, mean, var in stats:
            n = mean.numel()
            pooled = moments[offset:offset + n].view_as(mean)
            var.copy_((moments[offset + n:offset + 2 * n].view_as(var) - pooled.square()).clamp_min(0.0))
            mean.copy_(pooled)
            offset += 2 * n
            if hasattr(m, "_scale_cache"):
                m._scale_cache = None

    def broadcast_values(self, values: list[float]) -> list[float]:
        """rank 0's values on every rank."""
        if not self.enabled:
            return list(values)
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.broadcast(t, 0)
        return t.tolist()

    def weight_spread(self, parameters) -> float:
        """The largest absolute difference between any rank's parameters and rank 0's (0.0 on one process)."""
        if not self.enabled:
            return 0.0
        import torch.distributed as dist

        flat = torch.cat([p.detach().reshape(-1) for p in parameters])
        gathered = [torch.empty_like(flat) for _ in range(self.world_size)]
        dist.all_gather(gathered, flat)
        return max(float((g - gathered[0]).abs().max()) for g in gathered)


SINGLE = Distributed()


def init_distributed(cfg) -> Distributed:
    """Join the process group torchrun describes (RANK, LOCAL_RANK, WORLD_SIZE), with NCCL when the engine runs on
    cuda and gloo otherwise; give this rank its GPU and seed (cfg.engine.device, cfg.seed are set in place). A single
    process (no WORLD_SIZE, or 1) gets SINGLE and nothing changes."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = str(cfg.engine.device)
    if device.startswith("cuda"):
        device = f"cuda:{local}"
        cfg.engine.device = device
        torch.cuda.set_device(local)
        backend = "nccl"
    else:
        backend = "gloo"
    cfg.seed = int(cfg.seed) + rank
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world)
    return Distributed(rank=rank, local_rank=local, world_size=world, device=device)


def close_distributed(ctx: Distributed) -> None:
    """Leave the process group together: a rank that tore its group down while another still used it aborted now
    and then (gloo: "terminate called without an active exception", 1 exit in 5)."""
    if ctx.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
