"""Shared helpers of the task environment tests: small synthetic clips and composed configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from coohoi import humanoid as hum
from coohoi.cli import compose
from coohoi.motion.clip import MotionClip
from coohoi.motion.importers.cleanup import ground_clip
from coohoi.rotations import quat_from_euler_xyz

CLIP_FPS = 30.0


def synthetic_clip(name: str, frames: int = 60, speed: float = 1.0, turn_rate: float = 0.3,
                   phase: float = 0.0) -> MotionClip:
    """A smooth made-up motion: the root walks along a curve, bobs and rolls a little, every joint swings inside
    its range. Not physically consistent; it only has to be a valid, varied clip."""
    t = np.arange(frames) / CLIP_FPS
    yaw = turn_rate * t + phase
    root_pos = np.stack((speed * np.cumsum(np.cos(yaw)) / CLIP_FPS, speed * np.cumsum(np.sin(yaw)) / CLIP_FPS,
                         0.88 + 0.02 * np.sin(6.0 * t)), axis=-1)
    euler = np.stack((0.05 * np.sin(3.0 * t), 0.08 * np.sin(2.0 * t + 0.3), yaw), axis=-1)
    root_quat = quat_from_euler_xyz(torch.from_numpy(euler)).numpy()
    k = np.arange(hum.NUM_DOFS)
    dof = 0.3 * np.sin(4.0 * t[:, None] + 0.7 * k[None, :] + phase)
    # keep 1-DoF joints inside their one-sided ranges (elbows negative, knees positive)
    for g, (_, _, axes) in enumerate(hum.JOINT_GROUPS):
        if len(axes) == 1:
            i = hum.DOF_OFFSETS[g]
            sign = -1.0 if "elbow" in hum.DOF_NAMES[i] else 1.0
            dof[:, i] = sign * (0.5 + 0.3 * np.sin(4.0 * t + i))
    clip = MotionClip(fps=CLIP_FPS, root_pos=root_pos, root_quat=root_quat, dof_pos=dof, loop=False, name=name)
    return ground_clip(clip)[0]  # feet on the floor, as every imported clip: reference starts are then not lifted


def write_dataset(folder: Path) -> Path:
    """Two synthetic clips and a dataset yaml listing them; returns the yaml path."""
    folder.mkdir(parents=True, exist_ok=True)
    synthetic_clip("walk_a").save(folder / "walk_a.npz")
    synthetic_clip("walk_b", speed=0.6, turn_rate=-0.5, phase=1.0).save(folder / "walk_b.npz")
    path = folder / "dataset.yaml"
    path.write_text("clips:\n  - {file: walk_a.npz, weight: 1.0}\n  - {file: walk_b.npz, weight: 2.0}\n")
    return path


def env_config(task: str, dataset: Path, num_envs: int = 4, *overrides: str):
    return compose([f"task={task}", f"engine.num_envs={num_envs}", "engine.nthread=1",
                    f"task.env.motion_dataset={dataset}", *overrides])
