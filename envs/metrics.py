"""Per-episode task metrics of (cooperative) carrying (reference §8) as pure batched tensor functions and a small
tracker of per-environment state. The leading dimension of every tensor is the environment; nothing loops over
environments in Python and nothing reads a value back to the host (resets go by boolean mask, with torch.where /
masked_fill_), so the tracker can run inside a sync-free step.

Metrics (reference §8):
    CooHOI   success (object centre within 0.2 m of the target in 3D: the target is at resting height, so the object
             must be put down), precision_cm (100 x final distance, successes only), completion_time_s (first step
             within the success distance x policy dt, successes only).
    TeamHOI  sticky_success (object centre within 0.03 m xy of the target at ANY step), final_distance_m (xy),
             cooperation_fraction (between lift and arrival, the fraction of steps at which every active agent has
             both hands within 0.12 m of the rim and in contact), jerk (mean absolute jerk of the rim points, m/s^3).
    Ours     load_share per agent (max(0, -F_z) / (m g) of the object's force on the agent's hands), its mean over
             the steps while lifted, and the imbalance (max - min mean share among active agents).

Where a value does not apply it is NaN (precision of a failure, cooperation fraction before any lift, jerk before
four positions, the share of a masked agent)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from coohoi.rotations import quat_rotate, quat_rotate_inverse

GRAVITY = 9.81


# ---- object outline (rim) ----------------------------------------------------------------------------------------
@dataclass
class Outline:
    """The rim (top edge) of each environment's object, in the object's frame (rows = environments).

    half_sizes: rectangle half sizes (half_x, half_y); for a circle the radius in column 0 (column 1 unused) [N, 2]
    height: the rim's z in the object frame (e.g. +half_z for a box's top edge) [N]
    is_circle: True for a circular rim of radius half_sizes[:, 0], False for a rectangle [N] bool"""

    half_sizes: torch.Tensor
    height: torch.Tensor
    is_circle: torch.Tensor

    @staticmethod
    def rectangle(half_xy: torch.Tensor, height: torch.Tensor) -> Outline:
        """Rectangular rims of half sizes half_xy [N, 2] at height [N]."""
        return Outline(half_xy, height, torch.zeros(half_xy.shape[0], dtype=torch.bool, device=half_xy.device))

    @staticmethod
    def circle(radius: torch.Tensor, height: torch.Tensor) -> Outline:
        """Circular rims of the given radius [N] at height [N]."""
        return Outline(torch.stack((radius, radius), dim=-1), height,
                       torch.ones(radius.shape[0], dtype=torch.bool, device=radius.device))


def outline_points_local(outline: Outline, num_points: int) -> torch.Tensor:
    """num_points points [N, P, 3] evenly spaced (by arc length) around each rim, in the object frame.

    A rectangle's points start at the corner (+hx, -hy) and go counter-clockwise; a circle's start at angle 0."""
    h = outline.half_sizes
    frac = torch.arange(num_points, dtype=h.dtype, device=h.device) / num_points  # [P]
    hx, hy = h[:, 0:1], h[:, 1:2]  # [N, 1]
    # Rectangle: walk the perimeter 4 (hx + hy) side by side.
    s = frac * (4.0 * (hx + hy))  # [N, P]
    l1, l2, l3 = 2.0 * hy, 2.0 * hy + 2.0 * hx, 4.0 * hy + 2.0 * hx
    rx = torch.where(s < l1, hx.expand_as(s),
                     torch.where(s < l2, hx - (s - l1), torch.where(s < l3, -hx.expand_as(s), -hx + (s - l3))))
    ry = torch.where(s < l1, -hy + s,
                     torch.where(s < l2, hy.expand_as(s), torch.where(s < l3, hy - (s - l2), -hy.expand_as(s))))
    # Circle of radius hx.
    angle = 2.0 * math.pi * frac
    cx, cy = hx * torch.cos(angle), hx * torch.sin(angle)
    circle = outline.is_circle.unsqueeze(-1)
    x, y = torch.where(circle, cx, rx), torch.where(circle, cy, ry)
    return torch.stack((x, y, outline.height.unsqueeze(-1).expand_as(x)), dim=-1)


def outline_points(object_pos: torch.Tensor, object_quat: torch.Tensor, outline: Outline,
                   num_points: int) -> torch.Tensor:
    """World points [N, P, 3] evenly spaced around each object's rim (reference §8: the jerk of the rim points),
    for objects at object_pos [N, 3], object_quat [N, 4] (w, x, y, z)."""
    local = outline_points_local(outline, num_points)
    quat = object_quat.unsqueeze(1).expand(-1, num_points, -1)
    return object_pos.unsqueeze(1) + quat_rotate(quat, local)


def distance_to_outline(points_query: torch.Tensor, object_pos: torch.Tensor, object_quat: torch.Tensor,
                        outline: Outline) -> torch.Tensor:
    """Exact distance [N, M] from query points [N, M, 3] (e.g. hands) to each object's rim curve (reference §8:
    hands within 0.12 m of the rim). The rim lies in the plane z = height of the object frame, so the distance is
    sqrt(dz^2 + d^2), d the in-plane distance of the projected point to the rectangle's or circle's boundary."""
    m = points_query.shape[1]
    quat = object_quat.unsqueeze(1).expand(-1, m, -1)
    local = quat_rotate_inverse(quat, points_query - object_pos.unsqueeze(1))
    dz = local[..., 2] - outline.height.unsqueeze(-1)
    xy = local[..., :2]
    # Rectangle: |signed distance| to the boundary.
    q = xy.abs() - outline.half_sizes.unsqueeze(1)
    outside = q.clamp_min(0.0).norm(dim=-1)
    inside = q.max(dim=-1).values.clamp_max(0.0)
    d_rect = (outside + inside).abs()
    # Circle of radius half_sizes[:, 0].
    d_circle = (xy.norm(dim=-1) - outline.half_sizes[:, 0:1]).abs()
    d = torch.where(outline.is_circle.unsqueeze(-1), d_circle, d_rect)
    return torch.sqrt(d * d + dz * dz)


# ---- per-step quantities -----------------------------------------------------------------------------------------
def coohoi_metrics(distance: torch.Tensor, first_within_step: torch.Tensor, success_distance: float,
                   policy_dt: float) -> dict[str, torch.Tensor]:
    """CooHOI's episode metrics [N] from the object's final 3D distance to the target (at resting height) and the
    first step it came within success_distance (-1: never): success, precision_cm and completion_time_s (both NaN
    for failures)."""
    nan = torch.full_like(distance, float("nan"))
    success = distance < success_distance
    first = first_within_step.to(distance.dtype)
    return {"success": success.to(distance.dtype), "precision_cm": torch.where(success, 100.0 * distance, nan),
            "completion_time_s": torch.where(success & (first >= 0), first * policy_dt, nan)}


def load_share(hand_forces: torch.Tensor, object_mass: torch.Tensor, agent_mask: torch.Tensor,
               gravity: float = GRAVITY) -> torch.Tensor:
    """Each agent's share [N, K] of the object's weight: max(0, -F_z) / (m g), F_z the vertical (world) component
    of the force ON the agent's hands FROM the object, summed over its hands (hand_forces [N, K, H, 3]); the weight
    pushes the hands down, so a carried load is a negative F_z. NaN for masked agents (agent_mask [N, K] False).
    Ours (reference §8 lists the TeamHOI metrics; this adds who carries how much)."""
    fz = hand_forces[..., 2].sum(dim=-1)
    share = (-fz).clamp_min(0.0) / (object_mass.unsqueeze(-1) * gravity)
    return torch.where(agent_mask, share, torch.full_like(share, float("nan")))


def hands_cooperating(hand_rim_distance: torch.Tensor, hand_contact: torch.Tensor, agent_mask: torch.Tensor,
                      coop_distance: float) -> torch.Tensor:
    """[N] bool: every active agent has all its hands within coop_distance of the rim AND in contact (reference
    §8, TeamHOI cooperation); masked agents are ignored; False when no agent is active.
    hand_rim_distance [N, K, H], hand_contact [N, K, H] bool, agent_mask [N, K] bool."""
    agent_ok = ((hand_rim_distance < coop_distance) & hand_contact).all(dim=-1)
    return (agent_ok | ~agent_mask).all(dim=-1) & agent_mask.any(dim=-1)


def third_difference_jerk(history: torch.Tensor, points: torch.Tensor, dt: float) -> torch.Tensor:
    """Mean over points [N] of |p_t - 3 p_{t-1} + 3 p_{t-2} - p_{t-3}| / dt^3 (reference §8, TeamHOI jerk).
    history [N, 3, P, 3] holds (p_{t-3}, p_{t-2}, p_{t-1}); points [N, P, 3] is p_t."""
    d3 = points - 3.0 * history[:, 2] + 3.0 * history[:, 1] - history[:, 0]
    return d3.norm(dim=-1).mean(dim=-1) / dt ** 3


# ---- tracker ------------------------------------------------------------------------------------------------------
class TeamMetricsTracker:
    """Per-environment running state of the §8 episode metrics; call update() once per policy step (after the
    physics) and reset(mask) when episodes restart; episode_values() gives each metric as if every episode ended
    now. num_agents K is the (padded) team size; agent_mask says which agents are present.

    The cooperation window is half-open: from the first step at which the object is lifted more than
    lift_threshold above its resting height (inclusive) to the first step within sticky_distance xy of the target
    (exclusive), or to the latest step if it never arrived."""

    def __init__(self, num_envs: int, num_agents: int, num_points: int, policy_dt: float,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                 success_distance: float = 0.2, sticky_distance: float = 0.03, lift_threshold: float = 0.05,
                 coop_distance: float = 0.12, gravity: float = GRAVITY):
        self.num_envs, self.num_agents, self.num_points = num_envs, num_agents, num_points
        self.policy_dt, self.device, self.dtype = policy_dt, torch.device(device), dtype
        self.success_distance, self.sticky_distance = success_distance, sticky_distance
        self.lift_threshold, self.coop_distance, self.gravity = lift_threshold, coop_distance, gravity
        n, k, p = num_envs, num_agents, num_points
        f = {"dtype": dtype, "device": self.device}
        nan = float("nan")
        # name -> (tensor, value after reset)
        self._init = {
            "dist3": nan, "dist_xy": nan, "first_success_progress": -1, "first_sticky_progress": -1,
            "lifted": False, "coop_steps": 0, "window_steps": 0,
            "history": 0.0, "history_len": 0, "jerk_sum": 0.0, "jerk_steps": 0,
            "load_sum": 0.0, "load_steps": 0, "step_load_share": nan,
        }
        self.dist3 = torch.full((n,), nan, **f)
        self.dist_xy = torch.full((n,), nan, **f)
        self.first_success_progress = torch.full((n,), -1, dtype=torch.long, device=self.device)
        self.first_sticky_progress = torch.full((n,), -1, dtype=torch.long, device=self.device)
        self.lifted = torch.zeros(n, dtype=torch.bool, device=self.device)
        self.coop_steps = torch.zeros(n, dtype=torch.long, device=self.device)
        self.window_steps = torch.zeros(n, dtype=torch.long, device=self.device)
        self.history = torch.zeros(n, 3, p, 3, **f)  # the last 3 rim positions, oldest first
        self.history_len = torch.zeros(n, dtype=torch.long, device=self.device)
        self.jerk_sum = torch.zeros(n, **f)
        self.jerk_steps = torch.zeros(n, dtype=torch.long, device=self.device)
        self.load_sum = torch.zeros(n, k, **f)
        self.load_steps = torch.zeros(n, k, dtype=torch.long, device=self.device)
        self.step_load_share = torch.full((n, k), nan, **f)  # the latest step's shares (NaN for masked agents)

    def reset(self, mask_envs: torch.Tensor) -> None:
        """Clear the state of the environments where mask_envs [N] bool is True; the others are untouched."""
        for name, value in self._init.items():
            t = getattr(self, name)
            t.masked_fill_(mask_envs.view((-1,) + (1,) * (t.dim() - 1)), value)

    def update(self, object_pos: torch.Tensor, rest_height: torch.Tensor, target_pos: torch.Tensor,
               rim_points: torch.Tensor, hand_pos: torch.Tensor, hand_contact: torch.Tensor,
               hand_forces: torch.Tensor, object_mass: torch.Tensor, agent_mask: torch.Tensor,
               progress: torch.Tensor, hand_rim_distance: torch.Tensor | None = None) -> None:
        """Record one policy step (the state the physics just reached).

        object_pos [N, 3], rest_height [N] (the object centre's z when resting on the ground), target_pos [N, 3],
        rim_points [N, P, 3] (outline_points of the object's pose), hand_pos [N, K, H, 3], hand_contact [N, K, H]
        bool, hand_forces [N, K, H, 3] (world force ON each hand FROM the object), object_mass [N], agent_mask
        [N, K] bool, progress [N] long (the episode's step count, as the env's progress), hand_rim_distance
        [N, K, H] (optional: the exact distance_to_outline of the hands; default the distance to the nearest of
        the P rim points, which overestimates by up to half their spacing)."""
        def c(x: torch.Tensor) -> torch.Tensor:
            return x.to(self.dtype)

        object_pos, rest_height, target_pos = c(object_pos), c(rest_height), c(target_pos)
        rim_points, hand_pos, hand_forces, object_mass = c(rim_points), c(hand_pos), c(hand_forces), c(object_mass)
        n, k, h = hand_pos.shape[:3]

        # CooHOI and TeamHOI distances, first arrivals.
        err = target_pos - object_pos
        self.dist3.copy_(err.norm(dim=-1))
        self.dist_xy.copy_(err[:, :2].norm(dim=-1))
        within = self.dist3 < self.success_distance
        self.first_success_progress.copy_(torch.where(within & (self.first_success_progress < 0), progress,
                                                      self.first_success_progress))
        sticky = self.dist_xy < self.sticky_distance
        self.first_sticky_progress.copy_(torch.where(sticky & (self.first_sticky_progress < 0), progress,
                                                     self.first_sticky_progress))

        # Cooperation between lift (inclusive) and arrival (exclusive).
        lifted_now = object_pos[:, 2] - rest_height > self.lift_threshold
        self.lifted |= lifted_now
        in_window = self.lifted & (self.first_sticky_progress < 0)
        if hand_rim_distance is None:
            hand_rim_distance = torch.cdist(hand_pos.reshape(n, k * h, 3), rim_points).min(dim=-1).values
            hand_rim_distance = hand_rim_distance.view(n, k, h)
        coop = hands_cooperating(c(hand_rim_distance), hand_contact, agent_mask, self.coop_distance)
        self.window_steps += in_window.long()
        self.coop_steps += (in_window & coop).long()

        # Jerk of the rim points from the last 4 positions.
        full = self.history_len >= 3
        jerk = third_difference_jerk(self.history, rim_points, self.policy_dt)
        self.jerk_sum += torch.where(full, jerk, torch.zeros_like(jerk))
        self.jerk_steps += full.long()
        self.history.copy_(torch.cat((self.history[:, 1:], rim_points.unsqueeze(1)), dim=1))
        self.history_len.copy_((self.history_len + 1).clamp_max(3))

        # Load shares, averaged over the steps while lifted.
        share = load_share(hand_forces, object_mass, agent_mask, self.gravity)
        self.step_load_share.copy_(share)
        counted = agent_mask & lifted_now.unsqueeze(-1)
        self.load_sum += torch.where(counted, share, torch.zeros_like(share))
        self.load_steps += counted.long()

    def mean_load_share(self) -> torch.Tensor:
        """Each agent's mean share [N, K] over the steps while lifted and present; NaN where there were none."""
        steps = self.load_steps.to(self.dtype)
        return torch.where(self.load_steps > 0, self.load_sum / steps.clamp_min(1.0),
                           torch.full_like(self.load_sum, float("nan")))

    def episode_values(self) -> dict[str, torch.Tensor]:
        """Every metric [N] as if each episode ended now (reference §8); NaN where it does not apply.

        success, precision_cm, completion_time_s (CooHOI); sticky_success, final_distance_m (xy),
        arrival_time_s, cooperation_fraction, jerk (TeamHOI); load_share_<k> (mean share of agent k while lifted)
        and load_imbalance (max - min of those among agents with a share) (ours)."""
        nan = torch.full_like(self.dist3, float("nan"))
        sticky = self.first_sticky_progress >= 0
        window = self.window_steps.to(self.dtype)
        mean_share = self.mean_load_share()
        has = ~torch.isnan(mean_share)
        inf = torch.full_like(mean_share, float("inf"))
        top = torch.where(has, mean_share, -inf).max(dim=-1).values
        bottom = torch.where(has, mean_share, inf).min(dim=-1).values
        out = coohoi_metrics(self.dist3, self.first_success_progress, self.success_distance, self.policy_dt)
        out.update({
            "sticky_success": sticky.to(self.dtype),
            "final_distance_m": self.dist_xy.clone(),
            "arrival_time_s": torch.where(sticky, self.first_sticky_progress.to(self.dtype) * self.policy_dt, nan),
            "cooperation_fraction": torch.where(self.window_steps > 0,
                                                self.coop_steps.to(self.dtype) / window.clamp_min(1.0), nan),
            "jerk": torch.where(self.jerk_steps > 0,
                                self.jerk_sum / self.jerk_steps.to(self.dtype).clamp_min(1.0), nan),
            "load_imbalance": torch.where(has.any(dim=-1), top - bottom, nan),
        })
        for i in range(self.num_agents):
            out[f"load_share_{i}"] = mean_share[:, i]
        return out
