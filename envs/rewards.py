"""Carry task reward (reference §4) as pure batched tensor functions. Every term lies in [0, 1]; the task reward
is their weighted sum. Rows are controlled humanoids; the object quantities are each row's handle (see
coohoi.envs.observations.Handle), so the same terms serve one agent or several."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from coohoi.rotations import quat_rotate

if TYPE_CHECKING:
    from coohoi.envs.config import CarryEnvConfig
    from coohoi.envs.observations import HandlePose

REWARD_TERMS = ("walk_pos", "walk_vel", "walk_face", "held", "carry_far", "carry_near", "carry_face", "carry_dir",
                "putdown")
_EPS = 1e-6


def facing_xy(root_quat: torch.Tensor) -> torch.Tensor:
    """Unit horizontal direction [R, 2] of the root's x axis (the way the humanoid faces)."""
    x_axis = torch.zeros(root_quat.shape[:-1] + (3,), dtype=root_quat.dtype, device=root_quat.device)
    x_axis[..., 0] = 1.0
    f = quat_rotate(root_quat, x_axis)[..., :2]
    return f / f.norm(dim=-1, keepdim=True).clamp_min(_EPS)


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(_EPS)


def walk_rewards(root_pos, root_quat, root_lin_vel, stand_point, cfg: CarryEnvConfig) -> dict[str, torch.Tensor]:
    """walk_pos, walk_vel, walk_face toward the standing point; all 1 within cfg.walk_arrived_distance of it."""
    delta = stand_point[:, :2] - root_pos[:, :2]
    d2 = (delta * delta).sum(-1)
    direction = _unit(delta)
    v_toward = (root_lin_vel[:, :2] * direction).sum(-1)
    walk_pos = torch.exp(-cfg.walk_pos_coef * d2)
    shortfall = (cfg.walk_target_speed - v_toward).clamp_min(0.0)
    walk_vel = torch.where(v_toward > 0, torch.exp(-cfg.walk_vel_coef * shortfall * shortfall), torch.zeros_like(d2))
    walk_face = (facing_xy(root_quat) * direction).sum(-1).clamp_min(0.0)
    arrived = d2 <= cfg.walk_arrived_distance ** 2
    one = torch.ones_like(d2)
    return {"walk_pos": torch.where(arrived, one, walk_pos), "walk_vel": torch.where(arrived, one, walk_vel),
            "walk_face": torch.where(arrived, one, walk_face)}


def carry_state(current: HandlePose, target: HandlePose, cfg: CarryEnvConfig) -> dict[str, torch.Tensor]:
    """Errors and gates shared by the carry terms and the metrics: squared xy / xyz error of the held point to
    its target, whether it is near the target, placed (near and at resting height), and carry terms active."""
    err = target.held_point - current.held_point
    xy_sq = (err[:, :2] ** 2).sum(-1)
    xyz_sq = (err ** 2).sum(-1)
    near = xy_sq <= cfg.near_xy_sq
    placed = near & (err[:, 2].abs() <= cfg.placed_height_tolerance)
    active = near | (current.held_point[:, 2] >= cfg.carry_height)
    return {"xy_sq": xy_sq, "xyz_sq": xyz_sq, "near": near, "placed": placed, "active": active}


def held_reward(hand_pos, current: HandlePose, placed, cfg: CarryEnvConfig) -> torch.Tensor:
    """exp(-k |mean(hands) - held point|^2); 1 once the object is placed at the target. hand_pos [R, 2, 3]."""
    d = hand_pos.mean(dim=1) - current.held_point
    held = torch.exp(-cfg.held_coef * (d * d).sum(-1))
    return torch.where(placed, torch.ones_like(held), held)


def carry_rewards(root_pos, root_quat, current: HandlePose, target: HandlePose, state: dict[str, torch.Tensor],
                  cfg: CarryEnvConfig) -> dict[str, torch.Tensor]:
    """carry_far, carry_near, carry_face (0 unless active); carry_dir, putdown (0 unless near the target)."""
    zeros = torch.zeros_like(state["xy_sq"])
    active, near = state["active"], state["near"]
    carry_far = torch.exp(-cfg.carry_far_coef * state["xy_sq"])
    carry_near = torch.exp(-cfg.carry_near_coef * state["xyz_sq"])
    to_target = _unit(target.held_point[:, :2] - root_pos[:, :2])
    carry_face = (facing_xy(root_quat) * to_target).sum(-1).abs()  # facing the target, or backing toward it
    x_axis = torch.zeros_like(current.held_point)
    x_axis[:, 0] = 1.0
    carry_dir = (quat_rotate(current.quat, x_axis) * quat_rotate(target.quat, x_axis)).sum(-1).clamp_min(0.0)
    dz = current.held_point[:, 2] - target.held_point[:, 2]
    putdown = torch.exp(-cfg.putdown_coef * dz * dz)
    return {
        "carry_far": torch.where(active, carry_far, zeros),
        "carry_near": torch.where(active, carry_near, zeros),
        "carry_face": torch.where(active, carry_face, zeros),
        "carry_dir": torch.where(near, carry_dir, zeros),
        "putdown": torch.where(near, putdown, zeros),
    }


def carry_reward(root_pos, root_quat, root_lin_vel, hand_pos, current: HandlePose, target: HandlePose,
                 cfg: CarryEnvConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """All §4 terms and their weighted sum [R]."""
    state = carry_state(current, target, cfg)
    terms = walk_rewards(root_pos, root_quat, root_lin_vel, current.stand_point, cfg)
    terms["held"] = held_reward(hand_pos, current, state["placed"], cfg)
    terms.update(carry_rewards(root_pos, root_quat, current, target, state, cfg))
    total = sum(cfg.reward_weights[name] * terms[name] for name in REWARD_TERMS)
    return total, {name: terms[name] for name in REWARD_TERMS}
