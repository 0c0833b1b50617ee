"""Offscreen rendering of humanoid states: kinematic playback of clips, and worlds of a running env with markers and a
text overlay (`coohoi render`); the check that a window can open for the interactive viewer (`coohoi play`).

The OpenGL backend is chosen here rather than by MUJOCO_GL at `import mujoco` time (mujoco is imported long before
anyone renders): MUJOCO_GL if set (a name that is no backend is refused), else EGL, then OSMesa. On a headless
Debian machine EGL needs `apt-get install -y libegl1 libegl-mesa0 libgl1-mesa-dri` (OSMesa: `libosmesa6`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import mujoco
import numpy as np

from coohoi import humanoid as hum
from coohoi.config import SceneConfig
from coohoi.scene import Scene, build_scene

HEADLESS_BACKENDS = ("egl", "osmesa")
APT_HINT = "apt-get install -y libegl1 libegl-mesa0 libgl1-mesa-dri   (or libosmesa6 for MUJOCO_GL=osmesa)"
# Tracking camera: looks at the root from this distance (m), azimuth and elevation (degrees), at this height (m).
CAMERA_DISTANCE = 4.0
CAMERA_AZIMUTH = 100.0  # from the front-right side: objects held in front stay visible
CAMERA_ELEVATION = -15.0
CAMERA_LOOKAT_HEIGHT = 0.8
DEFAULT_SIZE = (640, 480)
# The scene's one overhead light leaves the sides dark; the camera's headlight fills in.
HEADLIGHT_AMBIENT = 0.35
HEADLIGHT_DIFFUSE = 0.5
VIDEO_SUFFIXES = (".mp4", ".gif", ".mkv", ".avi")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# Text overlay: font height as a fraction of the image height (at least OVERLAY_MIN_FONT px), on a dark box.
OVERLAY_FONT_FRACTION = 1 / 24
OVERLAY_MIN_FONT = 8
OVERLAY_BOX_RGBA = (0, 0, 0, 150)


class RenderError(RuntimeError):
    """No OpenGL backend could be loaded, or a render setting cannot work."""


def _context_class(backend: str):
    if backend == "egl":
        from mujoco.egl import GLContext
    elif backend == "osmesa":
        from mujoco.osmesa import GLContext
    elif backend == "glfw":
        from mujoco.glfw import GLContext
    else:
        raise RenderError(f"unknown OpenGL backend {backend!r}; choose egl, osmesa or glfw")
    return GLContext


def make_gl_context(width: int, height: int, backend: str | None = None):
    """An offscreen OpenGL context from the first backend that loads; returns (context, backend name). A MUJOCO_GL
    that names no backend is refused rather than ignored: the user asked for something that cannot happen."""
    requested = backend or os.environ.get("MUJOCO_GL", "").strip().lower()
    if requested and requested not in HEADLESS_BACKENDS + ("glfw",):
        raise RenderError(f"MUJOCO_GL={requested!r} names no OpenGL backend: use MUJOCO_GL=egl or osmesa (headless), "
                          f"or glfw with a display. On Debian/Ubuntu: {APT_HINT}")
    errors = []
    for name in [requested] if requested else HEADLESS_BACKENDS:
        try:
            context = _context_class(name)(width, height)
            context.make_current()
            return context, name
        except Exception as exc:  # missing library, no display, wrong PyOpenGL platform: try the next one
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
    detail = " ".join("; ".join(errors).split())  # one line: library errors can span several
    raise RenderError(f"no OpenGL backend could be loaded for offscreen rendering ({detail}). On Debian/Ubuntu: "
                      f"{APT_HINT}")


def require_window(hint: str) -> None:
    """Fail at once, with `hint`, where no window can open: mujoco.viewer.launch_passive opens its window in a
    thread and waits forever for one that failed to open."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise RenderError(f"no display for a window (DISPLAY is not set): {hint}")
    try:
        import glfw

        with warnings.catch_warnings():  # pyglfw reports GLFW errors as warnings
            warnings.simplefilter("ignore")
            window = None
            if glfw.init():
                glfw.window_hint(glfw.VISIBLE, glfw.FALSE)
                window = glfw.create_window(16, 16, "coohoi", None, None)
                if window:
                    glfw.destroy_window(window)
            glfw.terminate()
    except Exception as exc:  # no GLFW library, or an error reported as an exception
        raise RenderError(f"cannot open a window ({type(exc).__name__}: {exc}): {hint}") from exc
    if not window:
        display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        raise RenderError(f"cannot open an OpenGL window on display {display!r}: {hint}")


_X_ERROR_HANDLER = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
_x_error_handlers = []  # installed handlers stay referenced: Xlib keeps calling them


def route_x_errors(on_error) -> bool:
    """Send X errors to on_error() instead of Xlib's default handler, which ends the process (exit code 1 and a
    message on stderr) when a window is destroyed under the viewer's renderer (xdotool windowclose, some window
    managers). on_error runs on whichever thread hit the error and must only set a flag. False without libX11."""
    name = ctypes.util.find_library("X11")
    if not sys.platform.startswith("linux") or name is None:
        return False
    x11 = ctypes.CDLL(name)

    def report(display, event) -> int:
        on_error()
        return 0

    handler = _X_ERROR_HANDLER(report)
    x11.XSetErrorHandler.argtypes, x11.XSetErrorHandler.restype = [_X_ERROR_HANDLER], ctypes.c_void_p
    x11.XSetErrorHandler(handler)
    _x_error_handlers.append(handler)
    return True


@dataclass(frozen=True)
class Marker:
    """A decorative geom drawn into a scene (a target, a handle): MuJoCo geom type, size, position, rotation."""

    type: int
    size: tuple
    pos: tuple
    rgba: tuple
    quat: tuple = (1.0, 0.0, 0.0, 0.0)  # w, x, y, z


def add_markers(scene: mujoco.MjvScene, markers) -> None:
    """Append markers to a scene after mjv_updateScene (or to the viewer's user_scn); those beyond maxgeom are
    dropped."""
    mat = np.zeros(9)
    for m in markers:
        if scene.ngeom >= scene.maxgeom:
            break
        mujoco.mju_quat2Mat(mat, np.asarray(m.quat, dtype=np.float64))
        mujoco.mjv_initGeom(scene.geoms[scene.ngeom], int(m.type), np.asarray(m.size, dtype=np.float64),
                            np.asarray(m.pos, dtype=np.float64), mat, np.asarray(m.rgba, dtype=np.float32))
        scene.ngeom += 1


@lru_cache(maxsize=8)
def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow < 10.1 or without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def draw_overlay(frame: np.ndarray, text: str) -> np.ndarray:
    """The frame [H, W, 3] uint8 with `text` (may span lines) in its top-left corner, white on a dark box."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image, "RGBA")
    size = max(OVERLAY_MIN_FONT, round(frame.shape[0] * OVERLAY_FONT_FRACTION))
    pad = max(2, size // 3)
    font = _font(size)
    _, _, right, bottom = draw.multiline_textbbox((pad, pad), text, font=font)
    draw.rectangle((0, 0, right + pad, bottom + pad), fill=OVERLAY_BOX_RGBA)
    draw.multiline_text((pad, pad), text, fill=(255, 255, 255), font=font)
    return np.asarray(image)


@dataclass
class TrackingCamera:
    """A free camera that follows the root horizontally, or looks at a fixed point when `fixed_lookat` is set."""

    distance: float = CAMERA_DISTANCE
    azimuth: float = CAMERA_AZIMUTH
    elevation: float = CAMERA_ELEVATION
    lookat_height: float = CAMERA_LOOKAT_HEIGHT
    fixed_lookat: tuple[float, float] | None = None

    def apply(self, cam: mujoco.MjvCamera, root_pos: np.ndarray) -> None:
        cam.type = mujoco.mjtCamera.mjCAMERA_FREE
        x, y = self.fixed_lookat if self.fixed_lookat is not None else (root_pos[0], root_pos[1])
        cam.lookat[:] = (x, y, self.lookat_height)
        cam.distance, cam.azimuth, cam.elevation = self.distance, self.azimuth, self.elevation


class HumanoidRenderer:
    """Renders states of a scene (humanoids, object, floor) to RGB arrays [H, W, 3] uint8, offscreen."""

    def __init__(self, scene: Scene | None = None, width: int = DEFAULT_SIZE[0], height: int = DEFAULT_SIZE[1],
                 backend: str | None = None, show_object: bool = True):
        if width < 1 or height < 1:
            raise RenderError(f"image size must be positive, got {width}x{height}")
        self.scene = scene or build_scene(SceneConfig())
        self.model = self.scene.model
        self.model.vis.global_.offwidth = max(self.model.vis.global_.offwidth, width)
        self.model.vis.global_.offheight = max(self.model.vis.global_.offheight, height)
        self.model.vis.headlight.ambient[:] = HEADLIGHT_AMBIENT
        self.model.vis.headlight.diffuse[:] = HEADLIGHT_DIFFUSE
        if not show_object:  # clips without an object: hide the scene's object instead of rebuilding the scene
            self.model.geom_rgba[self.scene.object_geom_ids, 3] = 0.0
        self.width, self.height = width, height
        self.data = mujoco.MjData(self.model)
        self._gl, self.backend = make_gl_context(width, height, backend)
        self._context = mujoco.MjrContext(self.model, mujoco.mjtFontScale.mjFONTSCALE_150)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._context)
        self._scene = mujoco.MjvScene(self.model, maxgeom=1000)
        self._option = mujoco.MjvOption()
        self._camera = mujoco.MjvCamera()
        self._rect = mujoco.MjrRect(0, 0, width, height)

    def set_state(self, qpos: np.ndarray) -> None:
        """Set the full model qpos [nq] and compute kinematics."""
        qpos = np.asarray(qpos, dtype=np.float64)
        if qpos.shape != (self.model.nq,):
            raise ValueError(f"qpos must have shape ({self.model.nq},), got {qpos.shape}")
        self.data.qpos[:] = qpos
        mujoco.mj_kinematics(self.model, self.data)

    def render(self, qpos: np.ndarray | None = None, camera: TrackingCamera | None = None,
               segmentation: bool = False) -> np.ndarray:
        """RGB image [H, W, 3] uint8; with segmentation, an int array [H, W] of geom ids (-1 = background)."""
        if qpos is not None:
            self.set_state(qpos)
        rgb = self._draw(self.model, self.data, camera or TrackingCamera(), segmentation)
        if not segmentation:
            return rgb
        ids = rgb[..., 0].astype(np.int64) + (rgb[..., 1].astype(np.int64) << 8) + (rgb[..., 2].astype(np.int64) << 16)
        geom_of = np.full(self._scene.ngeom + 1, -1, dtype=np.int64)
        for i in range(self._scene.ngeom):
            g = self._scene.geoms[i]
            if g.objtype == mujoco.mjtObj.mjOBJ_GEOM:
                geom_of[g.segid + 1] = g.objid
        return geom_of[np.clip(ids, 0, self._scene.ngeom)]

    def render_world(self, model: mujoco.MjModel, data: mujoco.MjData, camera: TrackingCamera | None = None,
                     markers=()) -> np.ndarray:
        """RGB image [H, W, 3] uint8 of one world of a running env, from its own model (per-world object sizes) and
        data (kinematics computed), with markers drawn in; in this renderer's lighting."""
        model.vis.headlight.ambient[:] = self.model.vis.headlight.ambient
        model.vis.headlight.diffuse[:] = self.model.vis.headlight.diffuse
        return self._draw(model, data, camera or TrackingCamera(), markers=markers)

    def _draw(self, model, data, camera: TrackingCamera, segmentation: bool = False, markers=()) -> np.ndarray:
        root = data.qpos[self.scene.qpos_start[0]:self.scene.qpos_start[0] + 3]
        camera.apply(self._camera, root)
        self._gl.make_current()
        self._scene.flags[mujoco.mjtRndFlag.mjRND_SEGMENT] = segmentation
        self._scene.flags[mujoco.mjtRndFlag.mjRND_IDCOLOR] = segmentation
        mujoco.mjv_updateScene(model, data, self._option, None, self._camera, mujoco.mjtCatBit.mjCAT_ALL, self._scene)
        add_markers(self._scene, markers)
        mujoco.mjr_render(self._rect, self._scene, self._context)
        rgb = np.empty((self.height, self.width, 3), dtype=np.uint8)
        mujoco.mjr_readPixels(rgb, None, self._rect, self._context)
        return np.flipud(rgb).copy()

    def humanoid_geom_ids(self, k: int = 0) -> np.ndarray:
        bodies = self.scene.body_ids[k]
        return np.nonzero(np.isin(self.model.geom_bodyid, bodies))[0]

    def close(self) -> None:
        if self._context is not None:
            self._gl.make_current()
            self._context.free()
            self._context = None
        if self._gl is not None:
            self._gl.free()
            self._gl = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def humanoid_qpos(scene: Scene, root_pos, root_quat, dof_pos, object_pos=None, object_quat=None,
                  k: int = 0) -> np.ndarray:
    """Full model qpos [nq] with humanoid k at the given pose (others and the object at their defaults)."""
    qpos = scene.default_qpos.copy()
    start = int(scene.qpos_start[k])
    qpos[start:start + 3] = root_pos
    qpos[start + 3:start + 7] = root_quat
    qpos[start + 7:start + hum.QPOS_SIZE] = dof_pos
    if object_pos is not None:
        qpos[scene.object_qpos_start:scene.object_qpos_start + 3] = object_pos
        qpos[scene.object_qpos_start + 3:scene.object_qpos_start + 7] = object_quat
    return qpos


def video_writer(path: str | Path, fps: float):
    """An imageio writer (append_data(frame), a context manager) for a video: .mp4 via imageio-ffmpeg, or .gif."""
    import imageio.v2 as imageio

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise RenderError(f"{path}: unknown video type {suffix!r}; use one of {', '.join(VIDEO_SUFFIXES)}")
    if suffix == ".gif":
        return imageio.get_writer(path, mode="I", duration=1000.0 / fps, loop=0)
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError as exc:
        raise RenderError("writing video needs imageio-ffmpeg: pip install imageio-ffmpeg") from exc
    return imageio.get_writer(path, fps=fps, codec="libx264", quality=8, macro_block_size=8)


def write_frames(path: str | Path, frames, fps: float) -> None:
    """Frames (iterable of [H, W, 3] uint8) to a video (.mp4 via imageio-ffmpeg, .gif) or, one frame, an image."""
    import imageio.v2 as imageio

    path = Path(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        imageio.imwrite(path, next(iter(frames)))
        return
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise RenderError(f"{path}: unknown output type {path.suffix!r}; use one of {VIDEO_SUFFIXES + IMAGE_SUFFIXES}")
    with video_writer(path, fps) as writer:
        for frame in frames:
            writer.append_data(frame)
