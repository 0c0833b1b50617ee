"""`coohoi motion ...`: generate, inspect, check, import, show and render reference motions.

    coohoi motion generate [--out-dir DIR]                      write the shipped synthetic clips and dataset.yaml
    coohoi motion info CLIP                                     frames, rate, duration, ranges
    coohoi motion list                                          the shipped clips
    coohoi motion check [CLIP|DATASET.yaml ...]                 quality table; exit 1 when a clip fails a check
    coohoi motion show CLIP [--speed S] [--once]                play in the MuJoCo viewer (needs a display)
    coohoi motion render CLIP --out clip.mp4|frame.png [--fps --width --height --camera track|fixed
                                                        --camera-distance ... --time]
    coohoi motion import ase IN.npy|DIR --out OUT.npz|DIR [--loop] [clean-up options]
    coohoi motion import amass IN.npz|DIR --model-dir DIR --out OUT.npz|DIR [retarget options] [clean-up options]
    coohoi motion import bvh IN.bvh|DIR --out OUT.npz|DIR [--up y|z] [--joint-map MAP.yaml] [retarget options]
                                                        [clean-up options]

CLIP is a clip file (.npz) or the name of a shipped clip (assets/motions/, e.g. `coohoi motion show idle`);
`check` with no CLIP checks every shipped clip.
Clean-up options (every importer; coohoi.motion.importers.cleanup): --fps (the data's frame rate, overriding the
file's), --trim START END (frames, or seconds as 0.5s), --ground clip|frame|none, --no-trim-tpose, --keep-repeats,
--max-dof-speed RAD_PER_S, --filter-speed (filter speed spikes instead of refusing the clip).
Retarget options: --scale (source units to metres; default: match our height), --match directions|positions,
--iterations, --resample-fps (resample the source before retargeting).
IN may be a folder: every file of the format in it (ase *.npy, amass *.npz, bvh *.bvh) is imported into the folder
--out, with a dataset.yaml listing the clips (--weights equal, or by duration); a file that fails is reported and
the rest still import (exit 1 at the end).
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
IMPORT_SUFFIX = {"ase": ".npy", "amass": ".npz", "bvh": ".bvh"}  # the files a folder import picks up
DATASET_FILE = "dataset.yaml"  # written by a folder import, in the format of assets/motions/dataset.yaml
DATASET_SUFFIXES = (".yaml", ".yml")  # `check` takes a dataset and checks its clips


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

    check = sub.add_parser("check", help="check the quality of clips",
                           description="Print the quality table of clips (coohoi.motion.quality) and exit 1 when a "
                                       "clip fails a check (named after the table).")
    check.add_argument("clips", nargs="*", metavar="CLIP",
                       help=CLIP_HELP + ", or a dataset .yaml (its clips); none: every shipped clip")

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
        p = isub.add_parser(fmt, help=help_text, description=f"Import {help_text} as a coohoi clip; IN may be a "
                            f"folder: every *{IMPORT_SUFFIX[fmt]} in it, into the folder --out, with a {DATASET_FILE}.")
        p.add_argument("input", metavar="IN", help=f"a {IMPORT_SUFFIX[fmt]} file or a folder of them")
        p.add_argument("--out", required=True, help="output clip .npz (a folder when IN is one)")
        p.add_argument("--loop", action="store_true", help="mark the clip as looping")
        p.add_argument("--name", default=None, help="the clip's name (one file only; default: the file's)")
        p.add_argument("--weights", choices=("equal", "duration"), default="equal",
                       help="folder import: dataset weights, 1 per clip or the clip's duration in seconds")
        p.add_argument("--fps", type=float, default=None, help="the data's frame rate, overriding the file's")
        p.add_argument("--trim", nargs=2, default=("0", "0"), metavar=("START", "END"),
                       help="cut at the start and the end: frames (12) or seconds (0.5s)")
        p.add_argument("--ground", choices=("clip", "frame", "none"), default="clip",
                       help="put the clip's lowest foot point on the floor (clip), that of every frame, or neither")
        p.add_argument("--no-trim-tpose", action="store_true", help="keep a T-pose (calibration) start")
        p.add_argument("--keep-repeats", action="store_true", help="keep every frame even where each is stored twice")
        p.add_argument("--max-dof-speed", type=float, default=None, help="rad/s refused (default: the clean-up's)")
        p.add_argument("--filter-speed", action="store_true", help="filter DoF speed spikes instead of refusing")
        if fmt == "ase":
            continue
        p.add_argument("--scale", type=float, default=None, help="source units to metres (default: match height)")
        p.add_argument("--match", choices=("directions", "positions"), default="directions",
                       help="fit bone directions (keeps joint angles) or joint positions (keeps hand/foot places)")
        p.add_argument("--iterations", type=int, default=200)
        p.add_argument("--resample-fps", type=float, default=None, help="resample the source to this rate first")
        if fmt == "amass":
            p.add_argument("--model-dir", required=True, help="folder (or file) of the SMPL-H / SMPL-X model")
        if fmt == "bvh":
            p.add_argument("--up", choices=("y", "z"), default="y", help="up axis of the file (CMU: y)")
            p.add_argument("--joint-map", default=None, metavar="MAP.yaml",
                           help="our retarget points to the file's joint names (default: CMU and common names)")
    return parser


def _import_file(args, path: Path, out: Path, name: str | None, settings, joint_map) -> MotionClip:
    """Import one file with the command's options, save it, print what was done (fit, the clean-up's notes)."""
    from coohoi.motion.importers.retarget import RetargetConfig

    if args.format == "ase":
        from coohoi.motion.importers.ase import import_ase, skeleton_offset_error

        clip, stats = import_ase(path, loop=args.loop, name=name, settings=settings)
        mismatch = skeleton_offset_error(path)
        if mismatch > ASE_OFFSET_WARNING:
            print(f"warning: {path}: body offsets differ from our model's by up to {100 * mismatch:.1f} cm; "
                  "joint angles are kept, so limb positions will differ", file=sys.stderr)
    else:
        cfg = RetargetConfig(scale=args.scale, ground=args.ground, iterations=args.iterations,
                             resample_fps=args.resample_fps, match=args.match)
        if args.format == "amass":
            from coohoi.motion.importers.amass import import_amass

            clip, stats = import_amass(path, args.model_dir, cfg, loop=args.loop, name=name, settings=settings)
        else:
            from coohoi.motion.importers.bvh import import_bvh

            clip, stats = import_bvh(path, up_axis=args.up, retarget_cfg=cfg, joint_map=joint_map, loop=args.loop,
                                     name=name, settings=settings)
    clip.save(out)
    fit = (f", scale {stats['scale']:.4f}, fit error: positions mean {100 * stats['mean_error']:.1f} cm "
           f"max {100 * stats['max_error']:.1f} cm, bone directions mean {stats['mean_angle_error_deg']:.1f} deg "
           f"max {stats['max_angle_error_deg']:.1f} deg") if "scale" in stats else ""
    print(f"wrote {out}: {clip.num_frames} frames at {clip.fps:g} fps ({clip.duration:.2f} s){fit}")
    for note in stats.get("notes", []):
        print(f"  {note}")
    return clip


def _import(args) -> int:
    from coohoi.motion.importers.cleanup import ImportSettings

    settings = ImportSettings(fps=args.fps, ground=args.ground, trim=tuple(args.trim),
                              trim_tpose=not args.no_trim_tpose, collapse_repeats=not args.keep_repeats,
                              max_dof_speed=args.max_dof_speed, filter_speed=args.filter_speed)
    joint_map = None
    if getattr(args, "joint_map", None):
        from coohoi.motion.importers.bvh import load_joint_map

        joint_map = load_joint_map(args.joint_map)
    source = Path(args.input).expanduser()
    if not source.is_dir():
        _import_file(args, source, Path(args.out), args.name, settings, joint_map)
        return 0
    if args.name:
        raise ValueError("--name names one clip; the clips of a folder take their files' names")
    files = sorted(source.glob("*" + IMPORT_SUFFIX[args.format]))
    if not files:
        raise ValueError(f"{source}: no *{IMPORT_SUFFIX[args.format]} files to import as {args.format}")
    out_dir = Path(args.out)
    if out_dir.exists() and out_dir.resolve() == source.resolve() and IMPORT_SUFFIX[args.format] == CLIP_SUFFIX:
        raise ValueError(f"{out_dir}: --out must not be the input folder (its .npz clips would overwrite the data)")
    out_dir.mkdir(parents=True, exist_ok=True)
    written, failed = [], []
    for path in files:
        try:
            clip = _import_file(args, path, out_dir / (path.stem + CLIP_SUFFIX), None, settings, joint_map)
            written.append((path.stem + CLIP_SUFFIX, clip))
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the folder; it is reported
            print(f"failed {path}: {type(exc).__name__}: {exc}", file=sys.stderr)
            failed.append(path.name)
    if written:
        from coohoi.motion.library import write_dataset

        dataset = out_dir / DATASET_FILE
        weighting = "1 per clip" if args.weights == "equal" else "the clip's duration in seconds"
        write_dataset(dataset, [(file, 1.0 if args.weights == "equal" else round(clip.duration, 3))
                                 for file, clip in written],
                      [f"Clips imported by `coohoi motion import {args.format}` from {source}; weights: {weighting}."])
        print(f"wrote {dataset}: {len(written)} clip{'s' if len(written) != 1 else ''}, weights {weighting}")
    if failed:
        print(f"coohoi motion import: {len(failed)} of {len(files)} files failed: {', '.join(failed)}",
              file=sys.stderr)
        return 1
    return 0


def _check(args) -> int:
    """`coohoi motion check`: the quality table of the clips; 1 when any fails a check (each named)."""
    from coohoi.motion.library import load_dataset
    from coohoi.motion.quality import quality_table

    clips = []
    for arg in args.clips or list(shipped_clips()):
        path = resolve_clip(arg)
        if path.suffix in DATASET_SUFFIXES:
            clips += load_dataset(path)[0]
        else:
            clips.append(MotionClip.load(path))
    table, failures = quality_table(clips)
    print(table)
    failing = [(clip.name, failed) for clip, failed in zip(clips, failures) if failed]
    for name, failed in failing:
        print(f"FAIL {name}: {'; '.join(failed)}", file=sys.stderr)
    print(f"{len(clips) - len(failing)} of {len(clips)} clip{'s' if len(clips) != 1 else ''} pass")
    return 1 if failing else 0


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
        if args.command == "check":
            return _check(args)
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
