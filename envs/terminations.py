"""Termination rules (reference §2) as pure batched tensor functions over rows of humanoids."""

from __future__ import annotations

import torch


def fall_heights(fall_height: float, head_fall_height: float, head_id: int, num_bodies: int,
                 dtype=torch.float32, device=None) -> torch.Tensor:
    """Per-body height threshold [15]: fall_height for every body, head_fall_height for the head."""
    h = torch.full((num_bodies,), fall_height, dtype=dtype, device=device)
    h[head_id] = head_fall_height
    return h


def fallen(body_pos: torch.Tensor, contact_forces: torch.Tensor, contact_body_mask: torch.Tensor,
           heights: torch.Tensor, force_threshold: float) -> torch.Tensor:
    """[R] True where a body outside the contact bodies touches something and a body outside the contact bodies
    is below its height threshold (the published rule: the two need not be the same body).

    body_pos, contact_forces [R, 15, 3]; contact_body_mask [15] bool (True = allowed to touch); heights [15]."""
    others = ~contact_body_mask
    touching = (contact_forces.norm(dim=-1) > force_threshold) & others
    low = (body_pos[..., 2] < heights) & others
    return touching.any(dim=-1) & low.any(dim=-1)


def kicked(object_lin_vel: torch.Tensor, object_height: torch.Tensor, hand_height: torch.Tensor,
           speed: float, box_height: float | torch.Tensor, min_hand_height: float) -> torch.Tensor:
    """[R] The object was kicked along the ground: horizontal speed above `speed` while its centre is below
    `box_height` (a number or one per row) and the hands are up (mean hand height above `min_hand_height`), so the
    humanoid is not carrying it."""
    horizontal_speed = object_lin_vel[..., :2].norm(dim=-1)
    return (horizontal_speed > speed) & (object_height < box_height) & (hand_height > min_hand_height)


def timed_out(progress: torch.Tensor, episode_length: int) -> torch.Tensor:
    """[R] The episode has run its `episode_length` policy steps."""
    return progress >= episode_length
