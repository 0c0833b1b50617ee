"""Deterministic evaluation of a checkpoint (either learner) under the training runs' protocol: one episode per
environment from a fresh start (coohoi.agents.evaluation), next to the deterministic zero action on the same starts.
Prints a JSON line per policy; hydra overrides select the task and the environments.

    python scripts/evaluate_checkpoint.py runs/loco_ppo/nn/last.pth task=amp_locomotion engine.num_envs=256 seed=7
"""

from __future__ import annotations

import json
import sys

import torch

from coohoi.agents.evaluation import evaluate, zero_action
from coohoi.agents.train import load_policy
from coohoi.cli import compose
from coohoi.envs import make_env


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit(__doc__)
    checkpoint, overrides = argv[0], argv[1:]
    cfg = compose(overrides)
    torch.set_num_threads(1)
    env = make_env(cfg)
    policy = load_policy(cfg, env, checkpoint)
    for name, act in (("checkpoint", lambda obs: policy(obs, deterministic=True)), ("zero action", zero_action(env))):
        env.seed(int(cfg.seed))
        print(json.dumps({"policy": name, **evaluate(env, act)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
