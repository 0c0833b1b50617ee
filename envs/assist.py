"""Assistance forces for a curriculum (Yu, Turk and Liu 2018, "Learning symmetric and low-energy locomotion"): a
virtual PD holds each humanoid's pelvis up and upright, so that early policies learn to move before they must
balance alone; the learner fades it out (coohoi.agents.curriculum) and evaluation never has it.

A pure batched function of the pelvis state; the env applies its result to the pelvis through the engine
(xfrc_applied, held over the policy step's physics steps). Gains are far inside the explicit-integration limit at
30 Hz: the height loop's damping kd * dt / m is 200 * (1/30) / 48.9 = 0.14 and the tilt loop's, with the body's
pitch inertia about the feet (~10 kg m^2), 60 * (1/30) / 10 = 0.2 (instability sets in at 2).
"""

from __future__ import annotations

import torch

from coohoi.rotations import quat_rotate


def assist_wrench(root_pos: torch.Tensor, root_quat: torch.Tensor, root_lin_vel: torch.Tensor,
                  root_ang_vel: torch.Tensor, height: float, cfg) -> tuple[torch.Tensor, torch.Tensor]:
    """Force and torque [..., 3] (world frame) on the pelvis.

    force: upward only, kp * (height - z) - kd * vz, clamped to [0, cfg.max_force];
    torque: turns the pelvis's up axis back to vertical, kp * tilt_angle about the tilt axis minus kd times the
    horizontal angular velocity (yaw is left free), its norm clamped to cfg.max_torque."""
    up = torch.zeros_like(root_pos)
    up[..., 2] = 1.0
    lift = cfg.height_kp * (height - root_pos[..., 2]) - cfg.height_kd * root_lin_vel[..., 2]
    force = up * lift.clamp(0.0, cfg.max_force).unsqueeze(-1)
    body_up = quat_rotate(root_quat, up)
    axis = torch.cross(body_up, up, dim=-1)  # |axis| = sin(tilt), pointing about the axis that rights the pelvis
    sin = axis.norm(dim=-1, keepdim=True)
    tilt = torch.atan2(sin, body_up[..., 2:3])
    righting = axis / sin.clamp_min(1e-9) * tilt
    horizontal_spin = root_ang_vel - up * root_ang_vel[..., 2:3]
    torque = cfg.upright_kp * righting - cfg.upright_kd * horizontal_spin
    norm = torque.norm(dim=-1, keepdim=True)
    torque = torque * (cfg.max_torque / norm.clamp_min(cfg.max_torque))
    return force, torque
