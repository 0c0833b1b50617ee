"""Typed configs for the simulation core. Hydra yaml under cfg/ is checked against these dataclasses, so an unknown
or misspelled key stops with a message that names it."""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field, fields, is_dataclass
from operator import attrgetter
from typing import Any, Callable, TypeVar, get_type_hints

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


def _numbers(value: Any, key: str):
    """(name, number) of every float in a value, however deeply nested: dict entries as key.entry, list items as
    key[i]."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _numbers(v, f"{key}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _numbers(v, f"{key}[{i}]")
    elif isinstance(value, float):
        yield key, value


def check_finite(node: Any, where: str, error: type[ValueError] = ConfigError) -> None:
    """Every number in a dataclass tree must be finite: NaN or inf in a setting (also inside lists and dicts of any
    depth) is refused, naming the key."""
    for f in fields(node):
        value = getattr(node, f.name)
        if is_dataclass(value):
            check_finite(value, f"{where}.{f.name}", error)
            continue
        for name, number in _numbers(value, f"{where}.{f.name}"):
            if not math.isfinite(number):
                raise error(f"{name} must be a finite number, got {number}")


def override_key(item: str) -> str:
    """The dotted key a command-line override sets (`+a.b=1`, `++a.b=1`, `~a.b` -> a.b)."""
    return item.split("=", 1)[0].lstrip("+~").strip()


def check_keys(cls: type, node: Any, where: str, error: type[ValueError] = ConfigError) -> None:
    """A composed section must hold exactly its dataclass's keys: an unknown one (a typo, `+key=...`) or a deleted
    one (`~key`) is refused, naming it; hydra lets both through its typed nodes."""
    hints = get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    if node is None:
        raise error(f"{where} is a section of settings ({', '.join(names)}); it cannot be null")
    for key in node:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            raise error(f"unknown setting {where}.{key}" + (f" (did you mean {where}.{close[0]}?)" if close else
                                                            f"; {where} has {', '.join(names)}"))
    for name in names:
        if name not in node:
            raise error(f"{where}.{name} cannot be deleted; set it instead")
        if is_dataclass(hints[name]) and node[name] is not None:
            check_keys(hints[name], node[name], f"{where}.{name}", error)


# Range rules for check_ranges: (predicate, what it asks). A None value always passes (null settings mean "the
# default"; the typed configs already refuse None where it is not allowed).
Rule = tuple[Callable[[Any], bool], str]
POSITIVE: Rule = (lambda v: v > 0, "> 0")
NON_NEGATIVE: Rule = (lambda v: v >= 0, ">= 0")
UNIT: Rule = (lambda v: 0 <= v <= 1, "in [0, 1]")
OPEN_UNIT: Rule = (lambda v: 0 < v <= 1, "in (0, 1]")


def at_least(low: float) -> Rule:
    return (lambda v: v >= low, f">= {low}")


def one_of(choices) -> Rule:
    return (lambda v: v in choices, f"one of {', '.join(map(str, choices))}")


def each(rule: Rule) -> Rule:
    """Every item of a list satisfies rule (a rule given for a dict applies to each entry without this)."""
    return (lambda v: all(rule[0](x) for x in v), f"all {rule[1]}")


def span(rule: Rule = (lambda v: True, "")) -> Rule:
    """[low, high] with low <= high, both satisfying rule."""
    return (lambda v: len(v) == 2 and v[0] <= v[1] and all(rule[0](x) for x in v),
            "[low, high] with low <= high" + (f", both {rule[1]}" if rule[1] else ""))


def check_ranges(obj: Any, where: str, rules: list[tuple[str, Rule]], error: type[ValueError] = ConfigError) -> None:
    """Refuse values that cannot work. rules: (space-separated dotted keys, rule), a dict's rule applying to each of
    its entries; the message names the key."""
    for keys, (ok, text) in rules:
        for key in keys.split():
            value = attrgetter(key)(obj)
            name = f"{where}.{key}" if where else key
            entries = [(f"{name}.{k}", v) for k, v in value.items()] if isinstance(value, dict) else [(name, value)]
            for entry, item in entries:
                if item is not None and not ok(item):
                    raise error(f"{entry} must be {text}, got {item!r}")


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
    # A world whose state turns non-finite (MuJoCo auto-reset is off), whose speed passes max_speed (m/s or rad/s)
    # or which sinks deeper than max_penetration (m) into the ground is flagged unstable and reset by its task
    # (coohoi.engine.base.FAULT_KINDS).
    max_speed: float = 1000.0  # hard falls reach about 110 rad/s at the ankles; blow-ups go far beyond
    # Soft contacts give way in hard falls: over 64 worlds x 300 steps the deepest humanoid geom reached 0.047 m
    # under the published action noise and 0.164 m under actions of std 0.5 (MuJoCo's own contact depths agree).
    max_penetration: float = 0.25


ENGINE_RULES = [("name", one_of(ENGINES)), ("num_envs", at_least(1)), ("policy_dt max_speed max_penetration", POSITIVE),
                ("decimation nconmax njmax", at_least(1)), ("nthread", NON_NEGATIVE)]


def validate_engine(cfg: EngineConfig, where: str = "engine") -> EngineConfig:
    """Refuse engine settings that cannot work, naming the key (the engines check again when built)."""
    check_ranges(cfg, where, ENGINE_RULES)
    return cfg
