"""A strip of frames of a trained policy acting deterministically (world 0, one frame every `--every` steps), as one
PNG, so that a reader of the learning evidence can see what the policy does.

    MUJOCO_GL=egl python scripts/render_policy_strip.py runs/loco_td3/nn/last.pth docs/learning/loco_td3.png \\
        task=amp_locomotion seed=7
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("MUJOCO_GL", "egl")

import imageio.v3 as iio  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from coohoi.agents.policy import load_policy  # noqa: E402
from coohoi.cli import compose  # noqa: E402
from coohoi.envs import make_env  # noqa: E402
from coohoi.render import HumanoidRenderer, TrackingCamera  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("out")
    parser.add_argument("overrides", nargs="*", help="hydra overrides (task=..., seed=...)")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--every", type=int, default=20, help="policy steps between frames")
    parser.add_argument("--size", type=int, nargs=2, default=(320, 320))
    args = parser.parse_args()
    cfg = compose([*args.overrides, "engine.num_envs=1"])
    torch.set_num_threads(1)
    env = make_env(cfg)
    policy = load_policy(args.checkpoint)
    renderer = HumanoidRenderer(env.engine.scene, *args.size, show_object=cfg.task.env_type != "amp_locomotion")
    camera = TrackingCamera(distance=3.0)
    obs = env.reset()
    frames = []
    try:
        for step in range(args.frames * args.every):
            if step % args.every == 0:
                frames.append(renderer.render(env.engine.get_model_and_data(0)[1].qpos.copy(), camera))
            obs, *_ = env.step(policy.act(obs))
    finally:
        renderer.close()
    iio.imwrite(args.out, np.concatenate(frames, axis=1))
    print(f"wrote {args.out}: {len(frames)} frames, one every {args.every * env.policy_dt:.2f} s")


if __name__ == "__main__":
    main()
