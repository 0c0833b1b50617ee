"""Retargeting joint positions of another skeleton onto our humanoid.

The importers (AMASS, BVH) turn their data into world positions of source joints, named after the points of our
humanoid they correspond to (`TARGET_POINTS`: the 15 body origins, i.e. joint centres, plus toe and head markers).
`retarget` then
1. scales the source to our size (from leg and trunk length, unless a scale is given),
2. solves our root pose and 28 DoFs (weighted least squares through our torch forward kinematics, L-BFGS, with
   joint-limit, rest and smoothness terms, the twist of hips and shoulders smoothed harder): first in short windows
   in time order, each starting from the pose the last one ended in (continuity), then all frames at once, so that
   - `match="directions"` (default): our bones point where the source's bones point and our pelvis is at the
     scaled source pelvis. Bone directions do not depend on limb proportions, so a skeleton with longer arms or
     wider hips keeps its joint angles;
   - `match="positions"`: our points sit on the scaled source points (keeps hand and foot positions, bends
     joints to make up for different proportions),
3. fixes ground contact: the lowest foot point touches z = 0 over the clip (or in every frame).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from coohoi import humanoid as hum
from coohoi.motion.clip import MotionClip, MotionFormatError
from coohoi.motion.kinematics import ForwardKinematics, dof_limits, lowest_foot_z
from coohoi.rotations import normalize, quat_from_exp_map, quat_mul, quat_rotate

# Extra points on our bodies (body, offset in the body frame): the ball of each foot and the centre of the head.
MARKERS: dict[str, tuple[str, tuple[float, float, float]]] = {
    "right_toe": ("right_foot", (0.12, 0.0, -0.04)),
    "left_toe": ("left_foot", (0.12, 0.0, -0.04)),
    "head_top": ("head", (0.0, 0.0, 0.175)),
}
TARGET_POINTS: tuple[str, ...] = hum.BODY_NAMES + tuple(MARKERS)
REQUIRED_POINTS: tuple[str, ...] = hum.BODY_NAMES
MARKER_WEIGHT = 0.5  # markers are looser correspondences than joint centres
# Starting pose of the solve: knees and elbows slightly bent toward their valid side.
INITIAL_BEND = {"right_knee": 0.3, "left_knee": 0.3, "right_elbow": -0.3, "left_elbow": -0.3}
GROUND_MODES = ("clip", "frame", "none")
MATCH_MODES = ("directions", "positions")
# Bones whose directions are matched (pairs of points). Across-hip and across-shoulder vectors fix the pelvis and
# chest orientation; the rest follow the limbs, spine and neck.
BONES: tuple[tuple[str, str], ...] = (
    ("right_thigh", "left_thigh"), ("pelvis", "torso"), ("torso", "head"), ("head", "head_top"),
    ("right_upper_arm", "left_upper_arm"),
    ("right_upper_arm", "right_lower_arm"), ("right_lower_arm", "right_hand"),
    ("left_upper_arm", "left_lower_arm"), ("left_lower_arm", "left_hand"),
    ("right_thigh", "right_shin"), ("right_shin", "right_foot"), ("right_foot", "right_toe"),
    ("left_thigh", "left_shin"), ("left_shin", "left_foot"), ("left_foot", "left_toe"),
)
ROOT_POSITION_WEIGHT = 1.0  # directions mode: metres of pelvis error weigh like radians of bone direction error
# Twist DoFs (about the bone) of hips and shoulders: bone directions leave them undetermined when the knee or elbow
# is straight, so they get their own, stronger smoothness (RetargetConfig.twist_smooth_weight).
TWIST_DOFS: tuple[str, ...] = ("right_shoulder_z", "left_shoulder_z", "right_hip_z", "left_hip_z")
# First pass of the solve: windows of this length, in time order, each starting from the pose the previous one
# ended in (RetargetConfig.window_iterations). All frames starting from the rest pose instead let a limb in a pose
# that two Euler branches reach (a straight arm over the head, raised sideways or forward) take one branch in some
# frames and the other in the next: measured on a 120 fps straight-arm raise (tests/test_bvh_quirks.py), the
# shoulder flipped 178 degrees in one frame.
WINDOW_SECONDS = 0.1


@dataclass
class RetargetConfig:
    scale: float | None = None  # source units -> metres; None: match our leg and trunk length
    ground: str = "clip"  # clip: lowest foot point over the clip at z=0; frame: in every frame; none
    match: str = "directions"  # directions | positions (see the module docstring)
    iterations: int = 200  # L-BFGS iterations over the whole clip
    rest_weight: float = 1e-5  # pull of each DoF toward 0 (settles joints the points do not determine)
    smooth_weight: float = 1e-3  # penalty on DoF change between frames
    twist_smooth_weight: float = 0.1  # the same for TWIST_DOFS (a straight limb's twist is otherwise free to jitter)
    window_iterations: int = 30  # L-BFGS iterations per window of the first pass (WINDOW_SECONDS); 0: no first pass
    limit_weight: float = 10.0  # penalty on joint-limit violation (then clamped)
    resample_fps: float | None = None  # resample the source positions to this rate before solving


def resample_points(points: dict[str, np.ndarray], fps: float, new_fps: float) -> dict[str, np.ndarray]:
    """Linear resampling of positions [T, 3] from fps to new_fps over the same time span."""
    if not new_fps > 0:
        raise ValueError(f"resample rate must be positive, got {new_fps}")
    t = next(iter(points.values())).shape[0]
    old_times = np.arange(t) / fps
    new_times = np.arange(int(np.floor(old_times[-1] * new_fps + 1e-9)) + 1) / new_fps
    return {k: np.stack([np.interp(new_times, old_times, v[:, i]) for i in range(3)], -1) for k, v in points.items()}


def _height_chain(points: dict[str, np.ndarray]) -> float:
    """Leg length (hip-knee-ankle, mean of both) plus trunk (pelvis-torso-head), medians over frames."""
    length = lambda a, b: float(np.median(np.linalg.norm(points[a] - points[b], axis=-1)))  # noqa: E731
    legs = [length(f"{s}_thigh", f"{s}_shin") + length(f"{s}_shin", f"{s}_foot") for s in ("right", "left")]
    return float(np.mean(legs)) + length("pelvis", "torso") + length("torso", "head")


def our_points_rest() -> dict[str, np.ndarray]:
    """Our points [1, 3] in the default standing pose."""
    fk = ForwardKinematics(dtype=torch.float64)
    pos, quat = fk(torch.zeros(1, 3, dtype=torch.float64), torch.tensor([[1.0, 0, 0, 0]], dtype=torch.float64),
                   torch.zeros(1, hum.NUM_DOFS, dtype=torch.float64))
    return {k: v.numpy() for k, v in _points(pos, quat).items()}


def height_scale(points: dict[str, np.ndarray]) -> float:
    """Factor that brings the source skeleton to our size."""
    source = _height_chain(points)
    if not np.isfinite(source) or source <= 0:
        raise MotionFormatError("source skeleton has zero leg and trunk length; cannot scale it")
    return _height_chain(our_points_rest()) / source


def _points(body_pos: torch.Tensor, body_quat: torch.Tensor) -> dict[str, torch.Tensor]:
    out = {name: body_pos[..., b, :] for b, name in enumerate(hum.BODY_NAMES)}
    for name, (body, offset) in MARKERS.items():
        b = hum.BODY_NAMES.index(body)
        off = torch.tensor(offset, dtype=body_pos.dtype, device=body_pos.device).expand_as(body_pos[..., b, :])
        out[name] = body_pos[..., b, :] + quat_rotate(body_quat[..., b, :], off)
    return out


def _matrix_to_quat(m: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [..., 3, 3] to quaternions (w, x, y, z), numerically safe branch per element."""
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    cands = torch.stack((
        torch.stack((1 + m00 + m11 + m22, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                     m[..., 1, 0] - m[..., 0, 1]), -1),
        torch.stack((m[..., 2, 1] - m[..., 1, 2], 1 + m00 - m11 - m22, m[..., 0, 1] + m[..., 1, 0],
                     m[..., 0, 2] + m[..., 2, 0]), -1),
        torch.stack((m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 - m00 + m11 - m22,
                     m[..., 1, 2] + m[..., 2, 1]), -1),
        torch.stack((m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1],
                     1 - m00 - m11 + m22), -1),
    ), -2)
    best = torch.stack((m00 + m11 + m22, m00, m11, m22), -1).argmax(-1)
    q = torch.gather(cands, -2, best[..., None, None].expand(best.shape + (1, 4))).squeeze(-2)
    q = normalize(q)
    return torch.where(q[..., :1] < 0, -q, q)


def initial_root_quat(points: dict[str, torch.Tensor]) -> torch.Tensor:
    """Root rotation from the source: up = pelvis -> torso, left = right hip -> left hip; we face +x."""
    up = normalize(points["torso"] - points["pelvis"])
    left = points["left_thigh"] - points["right_thigh"]
    left = normalize(left - (left * up).sum(-1, keepdim=True) * up)
    forward = torch.cross(left, up, dim=-1)
    return _matrix_to_quat(torch.stack((forward, left, up), dim=-1))


def _validate_points(points: dict[str, np.ndarray], source: str) -> int:
    missing = [p for p in REQUIRED_POINTS if p not in points]
    if missing:
        raise MotionFormatError(f"{source}: cannot retarget without source joints for {missing}")
    unknown = [p for p in points if p not in TARGET_POINTS]
    if unknown:
        raise MotionFormatError(f"{source}: unknown retarget points {unknown}")
    t = points["pelvis"].shape[0]
    for name, p in points.items():
        if p.shape != (t, 3):
            raise MotionFormatError(f"{source}: joint positions for {name} must be [{t}, 3], got {p.shape}")
        if not np.all(np.isfinite(p)):
            raise MotionFormatError(f"{source}: joint positions for {name} contain NaN or infinity")
    if t < 2:
        raise MotionFormatError(f"{source}: need at least 2 frames, got {t}")
    return t


def retarget(points: dict[str, np.ndarray], fps: float, cfg: RetargetConfig | None = None, name: str = "",
             source: str = "source") -> tuple[MotionClip, dict]:
    """Our clip from source joint positions {point name: [T, 3]} (z up). Returns the clip and fit statistics."""
    cfg = cfg or RetargetConfig()
    if cfg.ground not in GROUND_MODES:
        raise ValueError(f"ground must be one of {GROUND_MODES}, got {cfg.ground!r}")
    if cfg.match not in MATCH_MODES:
        raise ValueError(f"match must be one of {MATCH_MODES}, got {cfg.match!r}")
    _validate_points(points, source)
    if cfg.resample_fps is not None and cfg.resample_fps != fps:
        points, fps = resample_points(points, fps, cfg.resample_fps), cfg.resample_fps
    t = _validate_points(points, source)
    scale = height_scale(points) if cfg.scale is None else float(cfg.scale)
    dt = torch.float64
    target = {k: torch.from_numpy(np.asarray(v, dtype=np.float64) * scale) for k, v in points.items()}
    weights = {k: (1.0 if k in hum.BODY_NAMES else MARKER_WEIGHT) for k in target}
    bones = [(a, b) for a, b in BONES if a in target and b in target]
    target_dirs = {bone: normalize(target[bone[1]] - target[bone[0]]) for bone in bones}

    fk = ForwardKinematics(dtype=dt)
    q_init = initial_root_quat(target)
    limits = dof_limits()
    twist = torch.tensor([n in TWIST_DOFS for n in hum.DOF_NAMES])
    smooth = torch.where(twist, cfg.twist_smooth_weight, cfg.smooth_weight).to(dt)

    def solve(frames: slice, init: list[torch.Tensor], iterations: int, anchor: torch.Tensor | None = None):
        """L-BFGS over the root pose and DoFs of `frames`, from `init`; `anchor` is the DoFs of the frame before."""
        root_pos, root_rotvec, dof = (x[frames].detach().clone().requires_grad_(True) for x in init)
        tgt = {k: v[frames] for k, v in target.items()}
        dirs = {k: v[frames] for k, v in target_dirs.items()}
        q0 = q_init[frames]

        def loss_fn():
            body_pos, body_quat = fk(root_pos, quat_mul(quat_from_exp_map(root_rotvec), q0), dof)
            ours = _points(body_pos, body_quat)
            if cfg.match == "positions":
                fit = sum(weights[k] * ((ours[k] - tgt[k]) ** 2).sum() for k in tgt)
            else:
                fit = ROOT_POSITION_WEIGHT * ((ours["pelvis"] - tgt["pelvis"]) ** 2).sum()
                fit = fit + sum(weights[b] * ((normalize(ours[b] - ours[a]) - dirs[(a, b)]) ** 2).sum()
                                for a, b in bones)
            over = torch.relu(dof - limits[:, 1]) + torch.relu(limits[:, 0] - dof)
            reg = cfg.rest_weight * (dof ** 2).sum() + cfg.limit_weight * (over ** 2).sum()
            path = dof if anchor is None else torch.cat((anchor[None], dof))
            reg = reg + (smooth * (path[1:] - path[:-1]) ** 2).sum()
            return (fit + reg) / t

        optimizer = torch.optim.LBFGS([root_pos, root_rotvec, dof], lr=1.0, max_iter=iterations,
                                      tolerance_grad=1e-10, tolerance_change=1e-14, history_size=20,
                                      line_search_fn="strong_wolfe")

        def closure():
            optimizer.zero_grad()
            loss = loss_fn()
            loss.backward()
            return loss

        optimizer.step(closure)
        for x, solved in zip(init, (root_pos, root_rotvec, dof)):
            x[frames] = solved.detach()

    dof = torch.zeros(t, hum.NUM_DOFS, dtype=dt)
    for joint, angle in INITIAL_BEND.items():
        dof[:, hum.DOF_NAMES.index(joint)] = angle
    state = [target["pelvis"].clone(), torch.zeros(t, 3, dtype=dt), dof]
    # Pass 1: windows in time order, each starting from the previous window's last pose, so the solution follows
    # the motion continuously. Pass 2: the whole clip, refined from there.
    window = max(2, int(round(WINDOW_SECONDS * fps)))
    if cfg.window_iterations > 0:
        for start in range(0, t, window):
            if start:
                for x in state[1:]:
                    x[start:start + window] = x[start - 1]
            solve(slice(start, start + window), state, cfg.window_iterations, state[2][start - 1] if start else None)
    solve(slice(0, t), state, cfg.iterations)
    root_pos, root_rotvec, dof = state

    with torch.no_grad():
        dof_final = torch.maximum(torch.minimum(dof, limits[:, 1]), limits[:, 0])
        root_quat = quat_mul(quat_from_exp_map(root_rotvec), q_init)
        root = root_pos.clone()
        body_pos, body_quat = fk(root, root_quat, dof_final)
        if cfg.ground != "none":
            lowest = lowest_foot_z(body_pos, body_quat)
            lift = -lowest.min() if cfg.ground == "clip" else -lowest
            root[:, 2] += lift
            lift_xyz = torch.zeros(t, 3, dtype=dt)
            lift_xyz[:, 2] = lift
            target = {k: v + lift_xyz for k, v in target.items()}
            body_pos, body_quat = fk(root, root_quat, dof_final)
        ours = _points(body_pos, body_quat)
        errors = torch.stack([(ours[k] - target[k]).norm(dim=-1) for k in target], -1)
        cos = torch.stack([(normalize(ours[b] - ours[a]) * target_dirs[(a, b)]).sum(-1) for a, b in bones], -1)
        angle_errors = torch.rad2deg(torch.acos(cos.clamp(-1.0, 1.0)))
    clip = MotionClip(fps=float(fps), root_pos=root.numpy(), root_quat=root_quat.numpy(), dof_pos=dof_final.numpy(),
                      name=name).validate(source)
    stats = {"scale": scale, "mean_error": float(errors.mean()), "max_error": float(errors.max()),
             "mean_angle_error_deg": float(angle_errors.mean()), "max_angle_error_deg": float(angle_errors.max())}
    return clip, stats


__all__ = ["MARKERS", "TARGET_POINTS", "RetargetConfig", "height_scale", "retarget", "our_points_rest"]
