"""Why the deployed actor computes in float64: a checkpoint evaluated with torch and with onnxruntime, the actor in
float32 and in float64, over the same evaluation episodes (coohoi.agents.evaluation.run_episodes, seeds 0, 1, ...).
Prints how many episodes end at a different step.

    python scripts/measure_export_parity.py runs/carry_ppo/nn/last.pth task=carry_box_curriculum [episodes]
"""

from __future__ import annotations

import copy
import sys
import tempfile
import warnings

import torch
from torch import nn

from coohoi.agents.evaluation import run_episodes
from coohoi.agents.policy import load_policy, onnx_session, policy_run_config
from coohoi.cli import compose
from coohoi.envs import make_env


class Float32Actor(nn.Module):
    """The deployed actor's computation in float32 throughout."""

    def __init__(self, actor):
        super().__init__()
        self.net = copy.deepcopy(actor.net).float()
        self.register_buffer("mean", actor.obs_mean.float())
        self.register_buffer("std", actor.obs_std.float())
        self.clip = actor.obs_clip

    def forward(self, obs):
        return torch.clamp(self.net(torch.clamp((obs - self.mean) / self.std, -self.clip, self.clip)), -1.0, 1.0)


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit(__doc__)
    checkpoint, rest = argv[0], argv[1:]
    episodes = int(rest.pop()) if rest and rest[-1].isdigit() else 128
    torch.set_num_threads(1)
    policy = load_policy(checkpoint)
    overrides = [*rest, "engine.num_envs=64", f"checkpoint={checkpoint}"]
    cfg = policy_run_config(compose(overrides), overrides, policy)
    with tempfile.TemporaryDirectory() as tmp:
        for name, module in (("float32", Float32Actor(policy.actor)), ("float64", policy.actor)):
            path = f"{tmp}/{name}.onnx"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(module, (torch.zeros(1, policy.num_obs),), path, input_names=["obs"],
                                  output_names=["actions"], dynamic_axes={"obs": {0: "b"}, "actions": {0: "b"}},
                                  dynamo=False)
            session = onnx_session(path)
            acts = {"torch": lambda obs, m=module: m(obs).detach(),
                    "onnxruntime": lambda obs, s=session: torch.from_numpy(s.run(None, {"obs": obs.numpy()})[0])}
            lengths = {kind: run_episodes(make_env(cfg), act, episodes, 0)[1]["episode_length"]
                       for kind, act in acts.items()}
            differ = int((lengths["torch"] != lengths["onnxruntime"]).sum())
            print(f"{name}: {differ} of {episodes} episodes end at a different step (mean length torch "
                  f"{float(lengths['torch'].mean()):.1f}, onnxruntime {float(lengths['onnxruntime'].mean()):.1f})",
                  flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
