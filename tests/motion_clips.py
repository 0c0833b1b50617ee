"""Small synthetic clips for the motion tests: smooth sinusoids inside the joint ranges, with a moving root."""

from __future__ import annotations

import numpy as np
import torch

from coohoi import humanoid as hum
from coohoi.motion.clip import MotionClip
from coohoi.rotations import quat_from_euler_xyz, quat_mul, yaw_quat

FPS = 30.0
ROOT_SPEED = 1.2  # m/s along x
# Per-DoF amplitude (rad), frequency (Hz) and phase, deterministic.
_RNG = np.random.default_rng(7)
DOF_AMPLITUDE = _RNG.uniform(0.1, 0.4, hum.NUM_DOFS)
DOF_FREQUENCY = _RNG.uniform(0.3, 1.0, hum.NUM_DOFS)
DOF_PHASE = _RNG.uniform(0, 2 * np.pi, hum.NUM_DOFS)
# The 1-DoF joints live in one-sided ranges: elbows bend negative, knees positive.
DOF_CENTRE = np.zeros(hum.NUM_DOFS)
for name, centre in (("right_elbow", -0.8), ("left_elbow", -0.8), ("right_knee", 0.8), ("left_knee", 0.8)):
    DOF_CENTRE[hum.DOF_NAMES.index(name)] = centre


def dof_at(t: np.ndarray) -> np.ndarray:
    """Analytic DoF positions [T, 28] at times t."""
    return DOF_CENTRE + DOF_AMPLITUDE * np.sin(2 * np.pi * DOF_FREQUENCY * t[:, None] + DOF_PHASE)


def dof_vel_at(t: np.ndarray) -> np.ndarray:
    w = 2 * np.pi * DOF_FREQUENCY
    return DOF_AMPLITUDE * w * np.cos(w * t[:, None] + DOF_PHASE)


def root_at(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Root position [T, 3] and rotation [T, 4]: walking along x, bobbing, with yaw, pitch and roll oscillations."""
    pos = np.stack((ROOT_SPEED * t, 0.1 * np.sin(1.3 * t), 0.85 + 0.03 * np.sin(4.0 * t)), axis=-1)
    tt = torch.from_numpy(t)
    tilt = quat_from_euler_xyz(torch.stack((0.1 * torch.sin(2.0 * tt), 0.15 * torch.sin(1.5 * tt), 0 * tt), -1))
    quat = quat_mul(yaw_quat(0.5 + 0.4 * torch.sin(0.8 * tt)), tilt)
    return pos, quat.numpy()


def sinusoid_clip(duration: float = 2.0, fps: float = FPS, name: str = "sinusoid", with_object: bool = False) -> MotionClip:
    t = np.arange(int(round(duration * fps)) + 1) / fps
    pos, quat = root_at(t)
    clip = MotionClip(fps=fps, root_pos=pos, root_quat=quat, dof_pos=dof_at(t), loop=False, name=name)
    if with_object:
        clip.object_pos = pos + np.array([0.4, 0.0, 0.1])
        clip.object_quat = quat.copy()
    return clip.validate()


def looping_clip(num_frames: int = 40, fps: float = FPS, name: str = "loop") -> MotionClip:
    """One exact cycle of a periodic motion (frame num_frames would equal frame 0), walking along x."""
    period = num_frames / fps
    t = np.arange(num_frames) / fps
    phase = 2 * np.pi * t / period
    dof = DOF_CENTRE + DOF_AMPLITUDE * np.sin(phase[:, None] + DOF_PHASE)
    pos = np.stack((ROOT_SPEED * t, np.zeros_like(t), 0.85 + 0.03 * np.sin(2 * phase)), axis=-1)
    tp = torch.from_numpy(phase)
    quat = quat_from_euler_xyz(torch.stack((0.05 * torch.sin(tp), 0.1 * torch.cos(tp), 0.2 * torch.sin(tp)), -1))
    return MotionClip(fps=fps, root_pos=pos, root_quat=quat.numpy(), dof_pos=dof, loop=True, name=name).validate()
