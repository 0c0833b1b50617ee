"""Carryable objects, built into a MuJoCo body from primitives (or convex parts of a mesh).

Every object's body frame sits at the centre of its bounding box, x along its long side. Mass is spread over the
parts in proportion to their volume.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from coohoi.config import OBJECT_KINDS, ObjectConfig

# Default full extents (m) and masses (kg) per kind; box, long box and the three tables follow the published setups
# (reference §7). A round table's x and y extents are its diameter. TeamHOI's table masses are 600 kg/m^3 times
# the volume of the top alone (1.6 x 1.6 x 0.04 m: 61.4 kg); here the mass is spread over top and legs by volume.
DEFAULT_SIZE = {
    "box": (0.5, 0.5, 0.5),
    "long_box": (2.0, 0.5, 0.5),
    "table": (2.0, 1.2, 0.86),
    "square_table": (1.6, 1.6, 0.86),
    "round_table": (2.0, 2.0, 0.86),
    "sofa": (2.0, 0.9, 0.8),
    "high_stool": (0.4, 0.4, 0.75),
    "mesh": None,  # taken from the mesh
}
DEFAULT_MASS = {"box": 5.0, "long_box": 25.0, "table": 57.6, "square_table": 61.4, "round_table": 75.4, "sofa": 30.0,
                "high_stool": 5.0, "mesh": 10.0}
TABLE_KINDS = ("table", "square_table", "round_table")
ROUND_KINDS = ("round_table",)  # kinds whose grip outline is a circle (x and y extents are its diameter)

# Furniture layouts in metres; TeamHOI tables: top 0.04 m thick on 0.82 m legs (reference §7).
TABLE_TOP_THICKNESS = 0.04
TABLE_LEG_WIDTH = 0.06
STOOL_LEG_WIDTH = 0.04
STOOL_SEAT_THICKNESS = 0.05


class ObjectConfigError(ValueError):
    pass


@dataclass
class ObjectInfo:
    half_extents: np.ndarray  # (3,) bounding box half size at full scale
    mass: float
    num_geoms: int


@dataclass
class Part:
    """One primitive geom of an object: MuJoCo type, centre in the body frame, MuJoCo geom size (box: half sizes;
    cylinder: radius, half height, 0) and volume (the share of the mass it takes)."""

    type: mujoco.mjtGeom
    centre: np.ndarray
    size: np.ndarray
    volume: float


def _box(centre, half) -> Part:
    centre, half = np.asarray(centre, dtype=float), np.asarray(half, dtype=float)
    return Part(mujoco.mjtGeom.mjGEOM_BOX, centre, half, float(np.prod(2 * half)))


def _table_parts(kind: str, size: np.ndarray) -> list[Part]:
    """A top TABLE_TOP_THICKNESS thick (box, or cylinder for a round table) on four square legs under its rim."""
    half = size / 2
    top_z = half[2] - TABLE_TOP_THICKNESS / 2
    leg_h = (size[2] - TABLE_TOP_THICKNESS) / 2
    if kind in ROUND_KINDS:
        radius = half[0]
        top = Part(mujoco.mjtGeom.mjGEOM_CYLINDER, np.array([0.0, 0.0, top_z]),
                   np.array([radius, TABLE_TOP_THICKNESS / 2, 0.0]), float(np.pi * radius**2 * TABLE_TOP_THICKNESS))
        # Legs on the diagonals, their outer corners one leg width inside the rim.
        leg_xy = np.full(2, (radius - TABLE_LEG_WIDTH) / np.sqrt(2) - TABLE_LEG_WIDTH / 2)
    else:
        top = _box([0, 0, top_z], [half[0], half[1], TABLE_TOP_THICKNESS / 2])
        leg_xy = half[0:2] - TABLE_LEG_WIDTH
    legs = [_box([x * leg_xy[0], y * leg_xy[1], -half[2] + leg_h], [TABLE_LEG_WIDTH / 2, TABLE_LEG_WIDTH / 2, leg_h])
            for x in (-1, 1) for y in (-1, 1)]
    return [top] + legs


def _primitive_parts(kind: str, size: np.ndarray) -> list[Part]:
    """The primitive geoms of the kinds built from boxes and cylinders, in metres."""
    if kind in TABLE_KINDS:
        return _table_parts(kind, size)
    return [_box(centre, half) for centre, half in _box_parts(kind, size)]


def _box_parts(kind: str, size: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(centre, half size) of each box part, in metres, for the box-built kinds."""
    sx, sy, sz = size
    half = size / 2
    if kind in ("box", "long_box"):
        return [(np.zeros(3), half)]
    if kind == "sofa":
        seat_h = 0.5 * sz
        arm_w = 0.1 * sx
        back_d = 0.22 * sy
        seat = (np.array([0, 0, -half[2] + seat_h / 2]), np.array([half[0], half[1], seat_h / 2]))
        back = (np.array([0, -half[1] + back_d / 2, seat_h / 2]), np.array([half[0], back_d / 2, half[2] - seat_h / 2]))
        arm_h = 0.25 * sz
        arms = [
            (np.array([x * (half[0] - arm_w / 2), back_d / 2, -half[2] + seat_h + arm_h / 2]),
             np.array([arm_w / 2, half[1] - back_d / 2, arm_h / 2]))
            for x in (-1, 1)
        ]
        return [seat, back] + arms
    if kind == "high_stool":
        seat = (np.array([0, 0, half[2] - STOOL_SEAT_THICKNESS / 2]), np.array([half[0], half[1], STOOL_SEAT_THICKNESS / 2]))
        leg_h = (sz - STOOL_SEAT_THICKNESS) / 2
        legs = [
            (np.array([x * (half[0] - STOOL_LEG_WIDTH), y * (half[1] - STOOL_LEG_WIDTH), -half[2] + leg_h]),
             np.array([STOOL_LEG_WIDTH / 2, STOOL_LEG_WIDTH / 2, leg_h]))
            for x in (-1, 1) for y in (-1, 1)
        ]
        return [seat] + legs
    raise ObjectConfigError(f"no primitive layout for object kind {kind!r}")


def _mesh_parts(cfg: ObjectConfig) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Convex parts (vertices, faces) of a mesh, centred on its bounding box and scaled to cfg.size if given."""
    import trimesh

    if not cfg.mesh_path:
        raise ObjectConfigError("object kind 'mesh' needs object.mesh_path")
    try:
        mesh = trimesh.load(cfg.mesh_path, force="mesh")
    except Exception as exc:  # trimesh raises many types for unreadable files
        raise ObjectConfigError(f"cannot read mesh {cfg.mesh_path!r}: {exc}") from exc
    if mesh.is_empty or len(mesh.faces) == 0:
        raise ObjectConfigError(f"mesh {cfg.mesh_path!r} has no faces")
    lo, hi = mesh.bounds
    mesh.apply_translation(-(lo + hi) / 2)
    extent = hi - lo
    if cfg.size is not None:
        mesh.apply_scale(np.asarray(cfg.size, dtype=float) / np.maximum(extent, 1e-9))
        extent = np.asarray(cfg.size, dtype=float)
    parts = []
    for piece in mesh.split(only_watertight=False) or [mesh]:
        hull = piece.convex_hull
        if hull.volume > 1e-9:
            parts.append((np.asarray(hull.vertices), np.asarray(hull.faces)))
    if not parts:
        raise ObjectConfigError(f"mesh {cfg.mesh_path!r} has no part with volume")
    return parts, extent / 2


def resolve_size(cfg: ObjectConfig) -> np.ndarray | None:
    if cfg.kind not in OBJECT_KINDS:
        raise ObjectConfigError(f"unknown object kind {cfg.kind!r}; choose one of {', '.join(OBJECT_KINDS)}")
    if cfg.size is None:
        return None if DEFAULT_SIZE[cfg.kind] is None else np.array(DEFAULT_SIZE[cfg.kind], dtype=float)
    size = np.asarray(cfg.size, dtype=float)
    if size.shape != (3,) or not np.all(np.isfinite(size)) or np.any(size <= 0):
        raise ObjectConfigError(f"object.size must be three positive lengths in metres, got {cfg.size}")
    if cfg.kind in ROUND_KINDS and not np.isclose(size[0], size[1]):
        raise ObjectConfigError(f"object kind {cfg.kind!r} is round: object.size x and y are its diameter and must be "
                                f"equal, got {cfg.size}")
    if cfg.kind in TABLE_KINDS and size[2] <= TABLE_TOP_THICKNESS:
        raise ObjectConfigError(f"a table must be taller than its {TABLE_TOP_THICKNESS} m top, got object.size "
                                f"{cfg.size}")
    if cfg.kind in ROUND_KINDS and size[0] / 2 <= TABLE_LEG_WIDTH * (1 + 1 / np.sqrt(2)):
        raise ObjectConfigError(f"a round table's diameter must leave room for its legs, got object.size {cfg.size}")
    return size


def add_object(spec: mujoco.MjSpec, body: mujoco.MjsBody, cfg: ObjectConfig, max_extent: float) -> ObjectInfo:
    """Add the object's geoms (and meshes) to body. Checks the config and raises ObjectConfigError on bad input."""
    size = resolve_size(cfg)
    mass = DEFAULT_MASS[cfg.kind] if cfg.mass is None else float(cfg.mass)
    if not np.isfinite(mass) or mass <= 0:
        raise ObjectConfigError(f"object.mass must be positive, got {cfg.mass}")
    for name, bounds in (("size_scale_range", cfg.size_scale_range), ("mass_scale_range", cfg.mass_scale_range)):
        if len(bounds) != 2 or not (0 < bounds[0] <= bounds[1]):
            raise ObjectConfigError(f"object.{name} must be [low, high] with 0 < low <= high, got {list(bounds)}")
    if cfg.size_scale_range[1] > 1.0:
        raise ObjectConfigError(
            "object.size_scale_range must stay <= 1: the model is built at object.size and worlds can only shrink it"
        )
    if cfg.kind == "mesh" and cfg.size_scale_range != [1.0, 1.0] and tuple(cfg.size_scale_range) != (1.0, 1.0):
        raise ObjectConfigError("mesh objects cannot be resized per world (MuJoCo meshes are shared by all worlds)")

    # contype 1 is the scene's world bit (coohoi.scene.WORLD_CONTYPE): every humanoid's conaffinity holds it.
    common = dict(friction=[cfg.friction, 0.01, 0.001], rgba=[0.55, 0.4, 0.25, 1], contype=1, conaffinity=3, condim=3)
    if cfg.kind == "mesh":
        parts, half_extents = _mesh_parts(cfg)
        volumes = []
        for i, (verts, faces) in enumerate(parts):
            mesh_name = f"{body.name}_part{i}"
            spec.add_mesh(name=mesh_name, uservert=verts.ravel().tolist(), userface=faces.ravel().tolist())
            volumes.append(abs(_mesh_volume(verts, faces)))
        shares = np.array(volumes) / sum(volumes)
        for i, share in enumerate(shares):
            body.add_geom(name=f"part{i}", type=mujoco.mjtGeom.mjGEOM_MESH, meshname=f"{body.name}_part{i}",
                          mass=float(mass * share), **common)
        num_geoms = len(parts)
    else:
        half_extents = size / 2
        parts = _primitive_parts(cfg.kind, size)
        volumes = np.array([p.volume for p in parts])
        for i, (part, share) in enumerate(zip(parts, volumes / volumes.sum())):
            body.add_geom(name=f"part{i}", type=part.type, pos=part.centre.tolist(), size=part.size.tolist(),
                          mass=float(mass * share), **common)
        num_geoms = len(parts)
    if np.any(2 * half_extents > max_extent):
        raise ObjectConfigError(
            f"object of size {np.round(2 * half_extents, 3).tolist()} m is larger than the scene allows "
            f"(scene.max_object_extent = {max_extent} m)"
        )
    return ObjectInfo(half_extents=np.asarray(half_extents, dtype=float), mass=mass, num_geoms=num_geoms)


def _mesh_volume(verts: np.ndarray, faces: np.ndarray) -> float:
    tri = verts[faces]
    return float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0)
