"""Typed configs for the simulation core. Hydra yaml under cfg/ is checked against these dataclasses, so an unknown
or misspelled key stops with a message that names it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting that cannot work; the message names it."""


def to_dataclass(cls: type[T], node: Any, where: str, error: type[ValueError] = ConfigError) -> T:
    """Check a config node (dict or DictConfig) against a dataclass and build it; an unknown key, a wrong type or a
    NaN or infinite number raises `error` naming `where` and the key."""
    if isinstance(node, cls):
        obj = node
    else:
        try:
            if OmegaConf.is_config(node):  # a plain copy: a node typed by cls would let unknown keys through
                node = OmegaConf.to_container(node, resolve=True)
            obj = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), node or {}))
        except OmegaConfBaseException as exc:
            key = getattr(exc, "full_key", None) or getattr(exc, "key", None)
            raise error(f"bad setting in {where}{'.' + str(key) if key else ''}: {exc}") from exc
    check_finite(obj, where, error)
    return obj


def check_finite(node: Any, where: str, error: type[ValueError] = ConfigError) -> None:
    """Every number in a dataclass tree must be finite: NaN or inf in a setting is refused, naming the key."""
    for f in fields(node):
        value = getattr(node, f.name)
        key = f"{where}.{f.name}"
        if is_dataclass(value):
            check_finite(value, key, error)
        elif isinstance(value, float) and not math.isfinite(value):
            raise error(f"{key} must be a finite number, got {value}")
        elif isinstance(value, (list, tuple, dict)) and any(
                isinstance(v, float) and not math.isfinite(v) for v in (value.values() if isinstance(value, dict)
                                                                        else value)):
            raise error(f"{key} must hold finite numbers, got {value}")


# "table" is TeamHOI's rectangle (2.0 x 1.2 m); "square_table" and "round_table" its other two (reference §7).
OBJECT_KINDS = ("box", "long_box", "table", "square_table", "round_table", "sofa", "high_stool", "mesh")
HAND_SHAPES = ("sphere", "palm")
ENGINES = ("mujoco", "warp")


@dataclass
class ObjectConfig:
    kind: str = "box"
    # Full extents (x, y, z) in metres; None takes the kind's default. x is the long axis of long objects.
    size: list[float] | None = None
    mass: float | None = None  # kg; None takes the kind's default
    # Per-environment randomisation: uniform scale of the size, and of the mass. Size scales must be <= 1: the
    # model is compiled at full size so that collision bounds stay valid when a world shrinks its object.
    size_scale_range: list[float] = field(default_factory=lambda: [1.0, 1.0])
    mass_scale_range: list[float] = field(default_factory=lambda: [1.0, 1.0])
    # True: the mass also scales with the volume (size scale cubed, times the mass scale), keeping the density, as
    # CooHOI's long box (density 50, size scaled by U[0.9, 1.0]; reference §7).
    constant_density: bool = False
    mesh_path: str | None = None  # kind=mesh: any file trimesh reads; collision uses convex parts
    friction: float = 1.0


@dataclass
class ContactConfig:
    """Contact settings chosen so that two hands squeezing a 5 kg box can lift and hold it (tests/test_grip.py).

    Measured with tests/test_grip.py's trial (box lifted 0.5 m, held 2 s): a stiffer solref (0.01) makes the arms
    chatter against the box and drop it; pyramidal cones or impratio 1 let it creep (1.9-5.6 cm); elliptic cones
    with impratio 10 hold it to about 1 cm without the cost of noslip iterations."""

    cone: str = "elliptic"  # elliptic | pyramidal
    impratio: float = 10.0
    noslip_iterations: int = 0
    solref: list[float] = field(default_factory=lambda: [0.02, 1.0])
    solimp: list[float] = field(default_factory=lambda: [0.9, 0.95, 0.001, 0.5, 2.0])
    hand_friction: list[float] = field(default_factory=lambda: [1.2, 0.05, 0.01])
    hand_condim: int = 3  # 4 (torsional friction) measured no less swing with sphere hands
    iterations: int = 50
    ls_iterations: int = 20


@dataclass
class SceneConfig:
    num_humanoids: int = 1
    object: ObjectConfig = field(default_factory=ObjectConfig)
    hand_shape: str = "sphere"
    contact: ContactConfig = field(default_factory=ContactConfig)
    physics_dt: float = 1.0 / 120.0  # published 120 Hz; docs/learning_evidence.md measures 1/240 and 1/480
    # Effort limit of the PD actuators, as a scale of the published motor gears (abdomen 200, neck 50, shoulder 100,
    # elbow 70, hip 200, knee 150, ankle 90 N m); None: no limit. The published Isaac Gym code sets none
    # (reference §1); docs/learning_evidence.md measures what the gear clamp costs an untrained humanoid.
    torque_limit: float | None = None
    arena_half_size: float = 30.0  # floor plane half size, metres
    max_object_extent: float = 4.0  # largest object side the scene accepts, metres
    humanoid_spacing: float = 1.0  # default spawn: humanoids on a line along y, this far apart
    # Humanoids of one scene collide with one another (each still ignores its own bodies, as the reference's
    # self-collision-off humanoid does). TeamHOI's agents share one table and can bump into each other
    # (reference §7); False restores the old scene where teammates pass through each other.
    # scripts/measure_team_collisions.py measures what it costs the CPU engine.
    team_collisions: bool = True


@dataclass
class EngineConfig:
    name: str = "mujoco"
    num_envs: int = 128  # the CPU default (enough for learning to show within minutes); engine=warp uses 4096
    policy_dt: float = 1.0 / 30.0  # the policy acts at 30 Hz (reference §2)
    decimation: int | None = None  # physics steps per policy step; None: policy_dt / scene.physics_dt (4 at 120 Hz)
    device: str = "cpu"
    nthread: int = 0  # mujoco engine: worker threads (0 = all CPUs)
    seed: int = 0
    # Warp engine: contact and constraint buffers per world; None sizes them from the scene.
    nconmax: int | None = None
    njmax: int | None = None
    cuda_graph: bool = True
    # A world whose state turns non-finite (MuJoCo auto-reset is off) or whose speed passes this limit (m/s or rad/s)
    # is flagged unstable.
    max_speed: float = 1000.0  # hard falls reach about 110 rad/s at the ankles; blow-ups go far beyond
