"""Scene composition: one MuJoCo world per environment, built from parts with mujoco.MjSpec.

A scene holds K humanoids (prefixes h0/, h1/, ...), one object (prefix obj/) and a ground plane. Both engines run
the model compiled here. The index maps that engines and tasks need are computed once, here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mujoco
import numpy as np

from coohoi import humanoid as hum
from coohoi.config import (HAND_SHAPES, NON_NEGATIVE, OPEN_UNIT, POSITIVE, ConfigError, SceneConfig, at_least,
                           check_ranges, each, one_of, span)
from coohoi.objects import ObjectConfigError, ObjectInfo, add_object, resolve_size

MAX_HUMANOIDS = 8
OBJECT_PREFIX = "obj/"
OBJECT_BODY = "obj/body"
# Flat palm alternative to the sphere hand: half sizes (x, y, z) in the hand frame, offset toward the body's midline
# so that its inner face is where the sphere's surface was.
PALM_HALF_SIZE = (0.05, 0.02, 0.06)
HAND_RADIUS = 0.04
# Default spawn: object this far in front (+x) of the first humanoid.
DEFAULT_OBJECT_DISTANCE = 2.0
# Collision bits (MuJoCo collides two geoms when contype1 & conaffinity2 or contype2 & conaffinity1; a body never
# collides with its parent). The floor and the object have contype WORLD_CONTYPE. Without team collisions every
# humanoid geom has contype 2, conaffinity 1 (assets/mjcf/humanoid.xml): it touches the floor and the object but no
# humanoid, itself included, as the reference humanoid has self-collisions off (reference §1). With them, humanoid k
# has its own contype bit, 1 << (k + 1), and its conaffinity holds the world bit and every other humanoid's bit, so
# teammates collide and a humanoid still ignores its own bodies. MAX_HUMANOIDS + 1 bits fit in MuJoCo's 32-bit masks.
WORLD_CONTYPE = 1
# The hand bodies whose contact with the object the scene measures, in the order of hand_object_sensor_adr.
HAND_BODIES = ("right_hand", "left_hand")
# Contact sensor parameters (mjSENS_CONTACT intprm): data = force only (bit mjCONDATA_FORCE), reduce = netforce (3,
# the sum of all matching contacts' forces in the world frame), one slot.
CONTACT_SENSOR_INTPRM = [1 << int(mujoco.mjtConDataField.mjCONDATA_FORCE), 3, 1]


class SceneConfigError(ConfigError):
    """A scene configuration that cannot be built; the message names the setting."""


def humanoid_prefix(k: int) -> str:
    return f"h{k}/"


def humanoid_collision_bits(k: int, num_humanoids: int, team_collisions: bool) -> tuple[int, int]:
    """(contype, conaffinity) of humanoid k's geoms; see WORLD_CONTYPE."""
    if not team_collisions:
        return 2, WORLD_CONTYPE
    own = 1 << (k + 1)
    team = sum(1 << (j + 1) for j in range(num_humanoids))
    return own, WORLD_CONTYPE | (team & ~own)


@dataclass
class Scene:
    """The compiled model and where each part of it lives in MuJoCo's arrays."""

    cfg: SceneConfig
    spec: mujoco.MjSpec
    model: mujoco.MjModel
    num_humanoids: int
    object_info: ObjectInfo
    body_ids: np.ndarray  # [K, 15] MuJoCo body ids in reference body order
    qpos_start: np.ndarray  # [K] start of each humanoid's 35 qpos (root pos, root quat, 28 DoF)
    qvel_start: np.ndarray  # [K] start of each humanoid's 34 qvel
    actuator_ids: np.ndarray  # [K, 28] in DoF order
    contact_sensor_adr: np.ndarray  # [K, 15] sensordata address of each body's net contact force (3 numbers)
    # [K, 2] sensordata address of the net contact force between each hand (HAND_BODIES order) and the object, as
    # the hand exerts it on the object (3 numbers, world frame)
    hand_object_sensor_adr: np.ndarray
    object_body_id: int
    object_qpos_start: int
    object_qvel_start: int
    object_geom_ids: np.ndarray
    dof_limits: np.ndarray  # [28, 2] joint ranges in radians
    default_qpos: np.ndarray = field(repr=False)  # model qpos at the default spawn

    def recompile(self) -> "Scene":
        """Compile self.spec again after editing it (a test adding a mocap body, say) and recompute the indices."""
        return _index(self.cfg, self.spec, self.spec.compile(), self.object_info)

    @property
    def contiguous(self) -> bool:
        """True when humanoids occupy consecutive blocks of bodies, qpos, qvel and actuators (views need no copy)."""
        k = np.arange(self.num_humanoids)
        return bool(
            np.all(self.body_ids == self.body_ids[0, 0] + hum.NUM_BODIES * k[:, None] + np.arange(hum.NUM_BODIES))
            and np.all(self.qpos_start == self.qpos_start[0] + hum.QPOS_SIZE * k)
            and np.all(self.qvel_start == self.qvel_start[0] + hum.QVEL_SIZE * k)
            and np.all(self.actuator_ids == self.actuator_ids[0, 0] + hum.NUM_DOFS * k[:, None] + np.arange(hum.NUM_DOFS))
            and np.all(self.contact_sensor_adr.ravel() == self.contact_sensor_adr[0, 0] + 3 * np.arange(
                self.contact_sensor_adr.size))
            and np.all(self.hand_object_sensor_adr.ravel() == self.hand_object_sensor_adr[0, 0] + 3 * np.arange(
                self.hand_object_sensor_adr.size))
        )


SCENE_RULES = [
    ("num_humanoids", (lambda v: isinstance(v, int) and 1 <= v <= MAX_HUMANOIDS,
                       f"an integer from 1 to {MAX_HUMANOIDS}")),
    ("hand_shape", one_of(HAND_SHAPES)), ("contact.cone", one_of(("elliptic", "pyramidal"))),
    ("physics_dt arena_half_size max_object_extent torque_limit contact.impratio", POSITIVE),
    ("humanoid_spacing contact.noslip_iterations", NON_NEGATIVE),
    ("contact.iterations contact.ls_iterations", at_least(1)),
    ("contact.hand_condim", one_of((1, 3, 4, 6))), ("contact.hand_friction", each(NON_NEGATIVE)),
    ("object.size", each(POSITIVE)), ("object.mass", POSITIVE),
    ("object.friction", NON_NEGATIVE), ("object.mass_scale_range", span(POSITIVE)),
    # the model is compiled at full size: worlds can only shrink the object
    ("object.size_scale_range", span(OPEN_UNIT)),
]


def validate_scene(cfg: SceneConfig, where: str = "scene") -> None:
    """Refuse settings that cannot work, naming the key (also run by `coohoi` at composition, where="task.scene")."""
    check_ranges(cfg, where, SCENE_RULES, SceneConfigError)
    if cfg.max_object_extent > 2 * cfg.arena_half_size:
        raise SceneConfigError(f"{where}.max_object_extent cannot exceed the floor (2 * {where}.arena_half_size)")
    try:
        resolve_size(cfg.object)  # the kind, and its constraints on object.size
    except ObjectConfigError as exc:
        raise SceneConfigError(f"{where}: {exc}") from exc


def _humanoid_spec(cfg: SceneConfig, k: int) -> mujoco.MjSpec:
    """Humanoid k's model, with the scene's effort limit, hand shape and collision bits."""
    spec = mujoco.MjSpec.from_file(str(hum.MJCF_PATH))
    contype, conaffinity = humanoid_collision_bits(k, cfg.num_humanoids, cfg.team_collisions)
    for geom in spec.geoms:
        geom.contype, geom.conaffinity = contype, conaffinity
    for actuator in spec.actuators:  # the MJCF's forcerange holds the published motor gears
        if cfg.torque_limit is None:
            actuator.forcelimited = mujoco.mjtLimited.mjLIMITED_FALSE
        else:
            actuator.forcerange = [cfg.torque_limit * x for x in actuator.forcerange]
    for side, medial in (("right", 1.0), ("left", -1.0)):
        geom = spec.geom(f"{side}_hand")
        geom.friction = list(cfg.contact.hand_friction)
        geom.condim = cfg.contact.hand_condim
        if cfg.hand_shape == "palm":
            mass = geom.mass if geom.mass > 0 else 1865.0 * 4.0 / 3.0 * np.pi * HAND_RADIUS**3
            geom.type = mujoco.mjtGeom.mjGEOM_BOX
            geom.size = list(PALM_HALF_SIZE)
            geom.pos = [0.0, medial * (HAND_RADIUS - PALM_HALF_SIZE[1]), 0.0]
            geom.mass = float(mass)
    return spec


def build_scene(cfg: SceneConfig) -> Scene:
    """Compose and compile the scene; bad settings raise SceneConfigError naming the setting."""
    validate_scene(cfg)
    spec = mujoco.MjSpec()
    spec.modelname = "coohoi_scene"
    opt = spec.option
    opt.timestep = cfg.physics_dt
    opt.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    opt.cone = mujoco.mjtCone.mjCONE_ELLIPTIC if cfg.contact.cone == "elliptic" else mujoco.mjtCone.mjCONE_PYRAMIDAL
    opt.impratio = cfg.contact.impratio
    opt.noslip_iterations = cfg.contact.noslip_iterations
    opt.iterations = cfg.contact.iterations
    opt.ls_iterations = cfg.contact.ls_iterations
    spec.visual.global_.offwidth = 1280
    spec.visual.global_.offheight = 720

    spec.add_texture(name="grid", type=mujoco.mjtTexture.mjTEXTURE_2D, builtin=mujoco.mjtBuiltin.mjBUILTIN_CHECKER,
                     rgb1=[0.25, 0.3, 0.35], rgb2=[0.35, 0.4, 0.45], width=512, height=512)
    spec.add_material(name="grid", texrepeat=[1, 1], texuniform=True).textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = "grid"
    spec.worldbody.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[cfg.arena_half_size] * 2 + [0.1],
                            material="grid", contype=WORLD_CONTYPE, conaffinity=3, condim=3, friction=[1.0, 0.01, 0.001])
    spec.worldbody.add_light(name="sun", pos=[0, 0, 6], dir=[0, 0, -1], type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL)

    k_count = cfg.num_humanoids
    for k in range(k_count):
        y = (k - (k_count - 1) / 2) * cfg.humanoid_spacing
        frame = spec.worldbody.add_frame(pos=[0.0, y, 0.0])
        spec.attach(_humanoid_spec(cfg, k), prefix=humanoid_prefix(k), frame=frame)

    obj_body = spec.worldbody.add_body(name=OBJECT_BODY)
    obj_body.add_freejoint(name=OBJECT_PREFIX + "root")
    try:
        object_info = add_object(spec, obj_body, cfg.object, cfg.max_object_extent)
    except ObjectConfigError as exc:
        raise SceneConfigError(str(exc)) from exc
    obj_body.pos = [DEFAULT_OBJECT_DISTANCE + object_info.half_extents[0], 0.0, object_info.half_extents[2]]

    for geom in spec.geoms:  # one contact softness for every pair: hands, object, floor
        geom.solref = list(cfg.contact.solref)
        geom.solimp = list(cfg.contact.solimp)

    for k in range(k_count):
        for name in hum.BODY_NAMES:
            spec.add_sensor(name=f"{humanoid_prefix(k)}{name}_contact", type=mujoco.mjtSensor.mjSENS_CONTACT,
                            objtype=mujoco.mjtObj.mjOBJ_BODY, objname=f"{humanoid_prefix(k)}{name}",
                            intprm=CONTACT_SENSOR_INTPRM)
    # The force between each hand and the object alone (contacts with the floor, teammates or the other hand left
    # out), for grip rewards and checks: the sensor matches contacts of body obj vs body ref.
    for k in range(k_count):
        for name in HAND_BODIES:
            spec.add_sensor(name=f"{humanoid_prefix(k)}{name}_object", type=mujoco.mjtSensor.mjSENS_CONTACT,
                            objtype=mujoco.mjtObj.mjOBJ_BODY, objname=f"{humanoid_prefix(k)}{name}",
                            reftype=mujoco.mjtObj.mjOBJ_BODY, refname=OBJECT_BODY, intprm=CONTACT_SENSOR_INTPRM)

    try:
        model = spec.compile()
    except ValueError as exc:
        raise SceneConfigError(f"MuJoCo could not compile the scene: {exc}") from exc
    return _index(cfg, spec, model, object_info)


def _index(cfg: SceneConfig, spec: mujoco.MjSpec, model: mujoco.MjModel, object_info: ObjectInfo) -> Scene:
    k_count = cfg.num_humanoids
    body_ids = np.array([[model.body(humanoid_prefix(k) + n).id for n in hum.BODY_NAMES] for k in range(k_count)])
    root_joints = [model.joint(humanoid_prefix(k) + "root") for k in range(k_count)]
    dof_joints = [[model.joint(humanoid_prefix(k) + n) for n in hum.DOF_NAMES] for k in range(k_count)]
    qpos_start = np.array([int(j.qposadr[0]) for j in root_joints])
    qvel_start = np.array([int(j.dofadr[0]) for j in root_joints])
    for k in range(k_count):  # the DoFs must follow the root in reference order
        assert [int(j.qposadr[0]) for j in dof_joints[k]] == list(qpos_start[k] + 7 + np.arange(hum.NUM_DOFS))
    actuator_ids = np.array([[model.actuator(humanoid_prefix(k) + n).id for n in hum.DOF_NAMES] for k in range(k_count)])
    sensor_adr = np.array(
        [[int(model.sensor(f"{humanoid_prefix(k)}{n}_contact").adr[0]) for n in hum.BODY_NAMES] for k in range(k_count)]
    )
    hand_adr = np.array(
        [[int(model.sensor(f"{humanoid_prefix(k)}{n}_object").adr[0]) for n in HAND_BODIES] for k in range(k_count)]
    )
    obj = model.body(OBJECT_BODY)
    obj_joint = model.joint(OBJECT_PREFIX + "root")
    geom_ids = np.nonzero(model.geom_bodyid == obj.id)[0]
    dof_limits = np.array([model.jnt_range[j.id] for j in dof_joints[0]])
    return Scene(
        cfg=cfg, spec=spec, model=model, num_humanoids=k_count, object_info=object_info, body_ids=body_ids,
        qpos_start=qpos_start, qvel_start=qvel_start, actuator_ids=actuator_ids, contact_sensor_adr=sensor_adr,
        hand_object_sensor_adr=hand_adr,
        object_body_id=obj.id, object_qpos_start=int(obj_joint.qposadr[0]), object_qvel_start=int(obj_joint.dofadr[0]),
        object_geom_ids=geom_ids, dof_limits=dof_limits, default_qpos=model.qpos0.copy(),
    )
