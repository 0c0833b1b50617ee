"""Smoke check of an un-installed checkout (the GPU machine's shim, see scripts/gpu_check.sh) and of the Warp engine.

    python3 -P scripts/gpu_smoke.py --device cpu      # here: Warp's CPU device
    python3 -P scripts/gpu_smoke.py --device cuda:0   # on the GPU machine, with CUDA graphs

Checks that `coohoi` and its top-level parts (coohoi.cfg, coohoi.envs, coohoi.agents, coohoi.assets) import from the
shim when COOHOI_SHIM names it, that the hydra config composes, and that a WarpEngine builds, resets, steps and
keeps a standing humanoid upright. Prints one line per check and exits non-zero on the first failure.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time


def check(name: str, ok: bool, detail: str = "") -> None:
    print(f"[{'ok' if ok else 'FAIL'}] {name}{': ' + detail if detail else ''}", flush=True)
    if not ok:
        sys.exit(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--envs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args(argv)

    import coohoi

    shim = os.environ.get("COOHOI_SHIM")
    where = os.path.dirname(coohoi.__file__)
    if shim:
        check("coohoi imports from the shim", os.path.abspath(where) == os.path.join(os.path.abspath(shim), "coohoi"),
              where)
    for sub in ("coohoi.cfg", "coohoi.envs", "coohoi.agents", "coohoi.assets", "coohoi.engine.warp_gpu"):
        try:
            importlib.import_module(sub)
        except Exception as exc:  # report any import failure, then stop
            check(f"import {sub}", False, repr(exc))
        check(f"import {sub}", True)

    from coohoi.assets import asset_path
    from coohoi.cli import compose

    check("humanoid MJCF found", asset_path("mjcf/humanoid.xml").exists())
    cfg = compose(["engine=warp", f"engine.device={args.device}", f"engine.num_envs={args.envs}"])
    check("config composes", cfg.engine.name == "warp", f"task={cfg.task.get('name', '?')}")

    import torch

    from coohoi.config import EngineConfig, SceneConfig
    from coohoi.engine import make_engine

    start = time.perf_counter()
    engine = make_engine(SceneConfig(), EngineConfig(name="warp", num_envs=args.envs, device=args.device))
    check("WarpEngine built", engine.device.type == torch.device(args.device).type,
          f"{time.perf_counter() - start:.1f} s, nconmax={engine.nconmax}, njmax={engine.njmax}")
    state = engine.default_state(args.envs)
    engine.reset(None, state)
    start = time.perf_counter()
    for _ in range(args.steps):
        engine.set_pd_targets(state.humanoid.dof_pos)
        engine.step()
    if engine.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    height = engine.root_pos[..., 2].min().item()
    check(f"{args.steps} policy steps (first includes kernel compilation)", bool(torch.isfinite(engine.root_pos).all()),
          f"{seconds:.1f} s, lowest root {height:.3f} m")
    check("standing humanoid stays up", height > 0.8)
    check("no world flagged unstable", not bool(engine.unstable.any()))
    graph = getattr(engine, "_step_graph", None)
    if engine.device.type == "cuda" and engine.cfg.cuda_graph:
        check("step captured as a CUDA graph", graph is not None)
    if engine.memory_stats():
        check("memory", True, ", ".join(f"{k}={v:.0f}" for k, v in engine.memory_stats().items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
