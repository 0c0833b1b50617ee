"""`coohoi motion ...`: generate, inspect, import, show and render reference motions.

    coohoi motion generate [--out-dir DIR]                      write the shipped synthetic clips and dataset.yaml
    coohoi motion info CLIP                                     frames, rate, duration, ranges
    coohoi motion list                                          the shipped clips
    coohoi motion show CLIP [--speed S] [--once]                play in the MuJoCo viewer (needs a display)
    coohoi motion render CLIP --out clip.mp4|frame.png [--fps --width --height --camera track|fixed
                                                        --camera-distance ... --time]
    coohoi motion import ase IN.npy --out OUT.npz [--loop]
    coohoi motion import amass IN.npz --model-dir DIR --out OUT.npz [retarget options]
    coohoi motion import bvh IN.bvh --out OUT.npz [--up y|z] [retarget options]

CLIP is a clip file (.npz) or the name of a shipped clip (assets/motions/, e.g. `coohoi motion show idle`).
Retarget options: --scale (source units to metres; default: match our height), --ground clip|frame|none,
--match directions|positions, --iterations, --fps (resample the source before retargeting).
Rendering runs headless with EGL or OSMesa (MUJOCO_GL=egl|osmesa picks one).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from coohoi.motion.clip import MotionClip, MotionFormatError

ASE_OFFSET_WARNING = 0.01  # metres between the file's skeleton and ours before `import ase` warns
CLIP_SUFFIX = ".npz"
CLIP_HELP = "a clip file (.npz) or a shipped clip's name (`coohoi motion list`)"


class UnknownClipError(ValueError):
    """Neither a clip file nor a shipped clip's name; the message lists the shipped names."""


def shipped_clips() -> dict[str, Path]:
    """The clips shipped in the installed assets (assets/motions/*.npz), by name."""
    from coohoi.assets import ASSET_DIR

    return {p.stem: p for p in sorted((Path(ASSET_DIR) / "motions").glob("*" + CLIP_SUFFIX))}


def resolve_clip(arg: str) -> Path:
    """A clip file, or the shipped clip of that name (`idle`, `pickup.npz`)."""
    path = Path(arg).expanduser()
    if path.exists():
        return path
    shipped = shipped_clips()
    name = path.name[:-len(CLIP_SUFFIX)] if path.name.endswith(CLIP_SUFFIX) else path.name
    if path.parent == Path(".") and name in shipped:
        return shipped[name]
    raise UnknownClipError(f"no clip file {arg!r} and no shipped clip of that name; shipped clips: "
                           f"{', '.join(shipped) or 'none (run `coohoi motion generate`)'}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coohoi motion", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="write the shipped synthetic clips",
                         description="Write the shipped synthetic clips and their dataset yamls.")
    gen.add_argument("--out-dir", default=None, help="output folder (default: the installed assets/motions)")

    info = sub.add_parser("info", help="describe a clip", description="Frames, rate, duration and ranges of a clip.")
    info.add_argument("clip", help=CLIP_HELP)

    sub.add_parser("list", help="list the shipped clips", description="The shipped clips, usable by name as CLIP.")

    show = sub.add_parser("show", help="play a clip in the MuJoCo viewer",
                          description="Play a clip in the interactive MuJoCo viewer (needs a display).")
    show.add_argument("clip", help=CLIP_HELP)
    show.add_argument("--speed", type=float, default=1.0)
    show.add_argument("--once", action="store_true", help="play once instead of looping")

    render = sub.add_parser("render", help="render a clip to a video or an image, headless",
                            description="Render a clip to a video or one frame, headless (MUJOCO_GL=egl|osmesa).")
    render.add_argument("clip", help=CLIP_HELP)
    render.add_argument("--out", required=True, help=".mp4 / .gif video, or .png / .jpg for one frame")
    render.add_argument("--fps", type=float, default=30.0)
    render.add_argument("--width", type=int, default=640)
    render.add_argument("--height", type=int, default=480)
    render.add_argument("--time", type=float, default=0.0, help="image output: the time (s) of the frame")
    render.add_argument("--camera", choices=("track", "fixed"), default="track",
                        help="follow the root, or stay still looking at the middle of its path")
    render.add_argument("--camera-distance", type=float, default=None)
    render.add_argument("--camera-azimuth", type=float, default=None)
    render.add_argument("--camera-elevation", type=float, default=None)
    render.add_argument("--backend", choices=("egl", "osmesa", "glfw"), default=None)

    imp = sub.add_parser("import", help="convert real motion data to a coohoi clip",
                         description="Convert real motion data to a coohoi clip (retargeted to our humanoid).")
    isub = imp.add_subparsers(dest="format", required=True)
    for fmt, help_text in (("ase", "ASE / CooHOI .npy motion"), ("amass", "AMASS .npz (SMPL-H / SMPL-X)"),
                           ("bvh", "BVH (CMU-style)")):
        p = isub.add_parser(fmt, help=help_text, description=f"Import {help_text} as a coohoi clip.")
        p.add_argument("input")
        p.add_argument("--out", required=True, help="output clip .npz")
        p.add_argument("--loop", action="store_true", help="mark the clip as looping")
        p.add_argument("--name", default=None)
        if fmt == "ase":
            continue
        p.add_argument("--scale", type=float, default=None, help="source units to metres (default: match height)")
        p.add_argument("--ground", choices=("clip", "frame", "none"), default="clip")
        p.add_argument("--match", choices=("directions", "positions"), default="directions",
                       help="fit bone directions (keeps joint angles) or joint positions (keeps hand/foot places)")
        p.add_argument("--iterations", type=int, default=200)
        p.add_argument("--fps", type=float, default=None, help="resample the source to this rate first")
        if fmt == "amass":
            p.add_argument("--model-dir", required=True, help="folder (or file) of the SMPL-H / SMPL-X model")
        if fmt == "bvh":
            p.add_argument("--up", choices=("y", "z"), default="y", help="up axis of the file (CMU: y)")
    return parser


def _import(args) -> int:
    from coohoi.motion.importers.retarget import RetargetConfig

    if args.format == "ase":
        from coohoi.motion.importers.ase import import_ase, skeleton_offset_error

        clip, stats = import_ase(args.input, loop=args.loop, name=args.name), {}
        mismatch = skeleton_offset_error(args.input)
        if mismatch > ASE_OFFSET_WARNING:
            print(f"warning: {args.input}: body offsets differ from our model's by up to {100 * mismatch:.1f} cm; "
                  "joint angles are kept, so limb positions will differ", file=sys.stderr)
    else:
        cfg = RetargetConfig(scale=args.scale, ground=args.ground, iterations=args.iterations, resample_fps=args.fps,
                             match=args.match)
        if args.format == "amass":
            from coohoi.motion.importers.amass import import_amass

            clip, stats = import_amass(args.input, args.model_dir, cfg, loop=args.loop, name=args.name)
        else:
            from coohoi.motion.importers.bvh import import_bvh

            clip, stats = import_bvh(args.input, up_axis=args.up, retarget_cfg=cfg, loop=args.loop, name=args.name)
    clip.save(args.out)
    fit = (f", scale {stats['scale']:.4f}, fit error: positions mean {100 * stats['mean_error']:.1f} cm "
           f"max {100 * stats['max_error']:.1f} cm, bone directions mean {stats['mean_angle_error_deg']:.1f} deg "
           f"max {stats['max_angle_error_deg']:.1f} deg") if stats else ""
    print(f"wrote {args.out}: {clip.num_frames} frames at {clip.fps:g} fps ({clip.duration:.2f} s){fit}")
    return 0


def _info(path: str) -> int:
    clip = MotionClip.load(resolve_clip(path))
    print(f"{path}: {clip.num_frames} frames at {clip.fps:g} fps, {clip.duration:.2f} s, loop={clip.loop}")
    span = clip.root_pos.max(0) - clip.root_pos.min(0)
    print(f"  root travel x/y/z: {span[0]:.2f} / {span[1]:.2f} / {span[2]:.2f} m; "
          f"root height {clip.root_pos[:, 2].min():.2f}-{clip.root_pos[:, 2].max():.2f} m")
    print(f"  DoF range: {np.degrees(clip.dof_pos.min()):.0f} to {np.degrees(clip.dof_pos.max()):.0f} deg; "
          f"object: {'yes' if clip.object_pos is not None else 'no'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, already printed): a code, as `coohoi` returns
        return exc.code if isinstance(exc.code, int) else 0
    try:
        if args.command == "generate":
            from coohoi.motion.generator import generate_all  # written alongside; imported only when asked

            for path in generate_all(args.out_dir):
                print(f"wrote {path}")
            return 0
        if args.command == "info":
            return _info(args.clip)
        if args.command == "list":
            for name, path in shipped_clips().items():
                clip = MotionClip.load(path)
                print(f"{name:<20} {clip.duration:5.2f} s{'  loop' if clip.loop else ''}"
                      f"{'  with object' if clip.object_pos is not None else ''}")
            return 0
        if args.command == "import":
            return _import(args)
        if args.command == "show":
            from coohoi.motion.playback import show_clip

            show_clip(MotionClip.load(resolve_clip(args.clip)), speed=args.speed, loop=not args.once)
            return 0
        if args.command == "render":
            from coohoi.motion.playback import render_clip
            from coohoi.render import TrackingCamera

            camera = TrackingCamera()
            for field in ("distance", "azimuth", "elevation"):
                value = getattr(args, f"camera_{field}")
                if value is not None:
                    setattr(camera, field, value)
            frames = render_clip(MotionClip.load(resolve_clip(args.clip)), args.out, fps=args.fps, width=args.width,
                                 height=args.height, camera=camera, time_s=args.time, backend=args.backend,
                                 fixed=args.camera == "fixed")
            print(f"wrote {args.out} ({frames} frame{'s' if frames != 1 else ''})")
            return 0
    except (MotionFormatError, UnknownClipError) as exc:
        print(f"coohoi motion {args.command}: {exc}", file=sys.stderr)
        return 2
    except (RuntimeError, ValueError, OSError) as exc:
        print(f"coohoi motion {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
