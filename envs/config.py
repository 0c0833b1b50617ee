"""Typed configs of the task environments. The `env` section of cfg/task/<name>.yaml is checked against these
dataclasses, so an unknown or misspelled key stops with a message that names it. Every constant that the
observation, reward and termination functions use lives here."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from coohoi import humanoid as hum
from coohoi.config import (NON_NEGATIVE, POSITIVE, UNIT, ConfigError, T, at_least, check_ranges, each, one_of,
                           span)
from coohoi.config import to_dataclass as core_to_dataclass
from coohoi.assets import ASSET_DIR
from coohoi.envs.rewards import REWARD_TERMS

RESET_MODES = ("default", "reference", "mix")
# The carry reward's term weights (reference §4).
CARRY_REWARD_WEIGHTS = {"walk_pos": 0.1, "walk_vel": 0.1, "walk_face": 0.1, "held": 0.4, "carry_far": 0.1,
                        "carry_near": 0.2, "carry_face": 0.2, "carry_dir": 0.1, "putdown": 0.1}


class EnvConfigError(ConfigError):
    """A task environment setting that cannot work; the message names the setting."""


@dataclass
class HumanoidEnvConfig:
    """What every humanoid task shares: episodes, resets, actions, falls and the AMP feature history."""

    episode_length_s: float = 10.0  # seconds; the env derives its step count from the engine's policy period
    # Start states: the default standing pose, reference states sampled from the motion library, or a mix.
    # Published: AMP locomotion starts from reference states, carrying from the default pose (reference §7).
    reset_mode: str = "reference"
    reference_reset_prob: float = 0.5  # mix: probability of a reference start
    random_heading: bool = True  # turn every start state by a random yaw about the root
    reference_height_offset: float = 0.0  # added to the root height of reference starts (metres)
    motion_dataset: str = "motions/dataset.yaml"  # relative paths are inside the shipped assets (coohoi.assets)

    # Fall termination (reference §2): a non-contact body has contact force and a non-contact body is low.
    enable_early_termination: bool = True
    fall_height: float = 0.2
    head_fall_height: float = 0.3
    fall_contact_force: float = 0.1  # newtons: a body with more net contact force than this touches something
    contact_bodies: list[str] = field(default_factory=lambda: ["right_foot", "left_foot"])
    termination_grace_steps: int = 1  # no early termination this many steps after a reset (settling contacts)

    # Action -> PD target (reference §2): 3-DoF groups offset 0, scale min(f3 * max|limit|, cap);
    # 1-DoF groups offset mid, scale f1 * (high - low).
    action_scale_3dof: float = 1.2
    action_scale_3dof_cap: float = math.pi
    action_scale_1dof: float = 0.7
    clip_actions: bool = True  # clamp actions to [-1, 1]

    amp_history: int = 10  # AMP frames per discriminator sample (CooHOI)
    proprio_noise_std: float = 0.0  # Gaussian noise on the 223 proprioception numbers


@dataclass
class AmpLocomotionEnvConfig(HumanoidEnvConfig):
    # The scene always holds an object; locomotion parks it out of the way, this far (x, y) from the origin.
    object_park_xy: list[float] = field(default_factory=lambda: [25.0, 25.0])


@dataclass
class CarryEnvConfig(HumanoidEnvConfig):
    """The carry task (reference §2-4, §7-8)."""

    episode_length_s: float = 20.0  # 600 policy steps (reference §2)
    reset_mode: str = "default"
    random_heading: bool = False  # published: the humanoid starts facing +x
    contact_bodies: list[str] = field(
        default_factory=lambda: ["right_foot", "left_foot", "right_hand", "left_hand"])

    # Placement (reference §7): box distance from the humanoid and target distance from the box, metres; angles
    # (world direction of the offset, and each yaw, radians) are sampled uniformly in the given ranges. Published:
    # the box straight ahead (+x) and the target further along +x, both at yaw 0 (cfg/task/carry_box_anywhere.yaml
    # samples every direction and yaw).
    box_distance_range: list[float] = field(default_factory=lambda: [0.5, 10.0])
    box_direction_range: list[float] = field(default_factory=lambda: [0.0, 0.0])
    box_yaw_range: list[float] = field(default_factory=lambda: [0.0, 0.0])
    target_distance_range: list[float] = field(default_factory=lambda: [1.5, 10.0])
    target_direction_range: list[float] = field(default_factory=lambda: [0.0, 0.0])
    target_yaw_range: list[float] = field(default_factory=lambda: [0.0, 0.0])
    # The box never starts inside the humanoid (the contact solver would launch it): its bounding circle stays
    # this far (xy) from every body origin lower than the box top plus this margin.
    box_clearance: float = 0.15
    randomize_object: bool = True  # sample size and mass from scene.object.{size,mass}_scale_range at every reset

    # Handle geometry (coohoi.envs.observations.team_handles): standing point this far outside the handle's -x face,
    # on the ground; a team member's handle is a square sub-box of this half size (the single-agent box's: CooHOI's
    # width-sized end of the 0.5 m wide long box).
    stand_offset: float = 0.2
    handle_half_size: float = 0.25

    # Rewards (reference §4): coefficients of the exponentials, thresholds and weights.
    walk_pos_coef: float = 2.0
    walk_vel_coef: float = 2.0
    walk_target_speed: float = 1.0  # m/s toward the standing point
    walk_arrived_distance: float = 0.2  # within this xy distance of the standing point the walk terms are 1
    held_coef: float = 5.0
    carry_far_coef: float = 0.5
    carry_near_coef: float = 10.0
    putdown_coef: float = 5.0
    near_xy_sq: float = 0.04  # "near the target": squared xy error at most this (two agents: 0.25)
    carry_height: float = 0.6  # carry terms count once the held point is this high (or near the target)
    placed_height_tolerance: float = 0.05  # held = 1 once near the target and within this of its resting height
    reward_weights: dict[str, float] = field(default_factory=lambda: dict(CARRY_REWARD_WEIGHTS))

    # "Kicked box" termination (reference §2).
    enable_kicked_termination: bool = True
    kicked_speed: float = 1.0  # horizontal box speed, m/s
    # box centre less than this above its resting height (published: below 0.3 m, the 0.5 m box resting at 0.25 m;
    # relative, so that it serves every object size)
    kicked_height_above_rest: float = 0.05
    kicked_hand_height: float = 0.5  # mean hand height above this

    # Success (reference §8): object centre within this 3D distance of the target at resting height.
    success_distance: float = 0.2
    # Progress metrics: an episode "held" the box once the held reward stayed above held_threshold for held_seconds.
    held_threshold: float = 0.8
    held_seconds: float = 1.0
    density_scale: float = 1.0 / 40.0  # the density observation is density * this (the 0.5 m, 5 kg box gives 1)
    # Gaussian noise on the object and target positions and corners of the task observation (published: 0.1).
    task_obs_noise_std: float = 0.1


@dataclass
class TeamCarryEnvConfig(CarryEnvConfig):
    """Cooperative carrying (coohoi.envs.team_carry; reference §3-4, §7). The box_distance_range and
    box_direction_range of the single-agent placement do not apply: the team stands around the object."""

    # Active humanoids per environment, sampled uniformly at every reset from [low, high] (at most
    # scene.num_humanoids, the slots the scene holds).
    team_size_range: list[int] = field(default_factory=lambda: [2, 2])
    # Published for two agents: the object between the humanoids plus U[0.5, 2] m, random yaw; target 1.5-10 m away.
    start_distance_range: list[float] = field(default_factory=lambda: [0.5, 2.0])  # beyond each standing point
    start_circle_radius: float | None = None  # TeamHOI: agents on a circle of this radius around the object
    box_yaw_range: list[float] = field(default_factory=lambda: [-math.pi, math.pi])
    target_direction_range: list[float] = field(default_factory=lambda: [-math.pi, math.pi])
    target_yaw_range: list[float] = field(default_factory=lambda: [-math.pi, math.pi])
    # Two agents (reference §4): "near the target" within 0.5 m, and no carry_face term.
    near_xy_sq: float = 0.25
    reward_weights: dict[str, float] = field(default_factory=lambda: {**CARRY_REWARD_WEIGHTS, "carry_face": 0.0})
    # Inactive humanoids stand here (x, y), park_spacing apart along y, far from the team and from each other.
    park_xy: list[float] = field(default_factory=lambda: [-25.0, -25.0])
    park_spacing: float = 2.0
    # "Dropped" termination (ours; the published code ends episodes on falls and kicks only): the object tilts more
    # than dropped_tilt (radians) from upright, or, once lifted this episode (its centre lift_height above its
    # resting height), it is back within dropped_height of the ground away from the target (not "near" it).
    enable_dropped_termination: bool = True
    dropped_tilt: float = 0.785
    dropped_height: float = 0.02
    # TeamHOI metrics (reference §8): success within sticky_distance (xy) at any step; cooperation between lift and
    # arrival while every agent's hands are within cooperation_distance of the rim and touch the object.
    lift_height: float = 0.05
    sticky_distance: float = 0.03
    cooperation_distance: float = 0.12


def to_dataclass(cls: type[T], node: Any, where: str) -> T:
    """coohoi.config.to_dataclass, raising EnvConfigError."""
    return core_to_dataclass(cls, node, where, EnvConfigError)


# Range rules per env config class (coohoi.config.check_ranges); a subclass's checks add to its parents'.
ENV_RULES: dict[type, list] = {
    HumanoidEnvConfig: [
        ("reset_mode", one_of(RESET_MODES)), ("reference_reset_prob", UNIT), ("amp_history", at_least(1)),
        ("episode_length_s action_scale_3dof action_scale_3dof_cap action_scale_1dof", POSITIVE),
        ("fall_height head_fall_height fall_contact_force termination_grace_steps proprio_noise_std", NON_NEGATIVE),
        ("contact_bodies", each(one_of(hum.BODY_NAMES))),
    ],
    CarryEnvConfig: [
        ("box_distance_range target_distance_range", span(NON_NEGATIVE)),
        ("box_direction_range box_yaw_range target_direction_range target_yaw_range", span()),
        ("walk_pos_coef walk_vel_coef held_coef carry_far_coef carry_near_coef putdown_coef box_clearance stand_offset"
         " walk_arrived_distance carry_height placed_height_tolerance kicked_height_above_rest kicked_hand_height"
         " held_seconds task_obs_noise_std", NON_NEGATIVE),
        ("walk_target_speed kicked_speed handle_half_size near_xy_sq success_distance density_scale", POSITIVE),
        ("held_threshold", UNIT), ("reward_weights", NON_NEGATIVE),
    ],
    TeamCarryEnvConfig: [
        ("team_size_range", span(at_least(1))), ("start_distance_range", span(NON_NEGATIVE)),
        ("start_circle_radius park_spacing dropped_tilt sticky_distance cooperation_distance", POSITIVE),
        ("dropped_height lift_height", NON_NEGATIVE),
    ],
}


def validate_humanoid_config(cfg: HumanoidEnvConfig, where: str = "task.env") -> None:
    """Refuse settings that cannot work, naming the key (run when the env is built and by `coohoi` at composition)."""
    for cls, rules in ENV_RULES.items():
        if isinstance(cfg, cls):
            check_ranges(cfg, where, rules, EnvConfigError)
    if isinstance(cfg, CarryEnvConfig) and set(cfg.reward_weights) != set(REWARD_TERMS):
        missing = [t for t in REWARD_TERMS if t not in cfg.reward_weights]
        extra = [t for t in cfg.reward_weights if t not in REWARD_TERMS]
        raise EnvConfigError(f"{where}.reward_weights must name exactly the terms {', '.join(REWARD_TERMS)} "
                             f"(missing {missing}, unknown {extra})")


def resolve_dataset_path(path: str) -> Path:
    """An absolute path, or one relative to the shipped assets (coohoi.assets)."""
    p = Path(path).expanduser()
    if not p.is_absolute():
        p = ASSET_DIR / p
    if not p.exists():
        raise EnvConfigError(f"task.env.motion_dataset: file not found: {p}")
    return p


def as_plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
