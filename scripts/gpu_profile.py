"""Where the Warp engine's physics time goes: raw mujoco_warp policy-step rates for variants of one scene.

    python3 -P scripts/gpu_profile.py --device cuda:0 --envs 4096 --scene box1

Each variant changes one thing against the scene as built (buffers sized by the engine, contact sensors, solver
iteration limits) and times `decimation` mujoco_warp.step calls in a CUDA graph, like the raw column of
`coohoi bench`. Prints policy steps per second summed over environments, per variant.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time

import mujoco
import torch


def _without_contact_sensors(model: mujoco.MjModel, scene) -> mujoco.MjModel:
    spec = scene.spec.copy()
    for sensor in list(spec.sensors):
        if sensor.type == mujoco.mjtSensor.mjSENS_CONTACT:
            spec.delete(sensor)
    stripped = spec.compile()
    stripped.opt.enableflags = model.opt.enableflags
    return stripped


def _rate(mjm: mujoco.MjModel, nworld: int, nconmax: int, njmax: int, device, decimation: int, seconds: float):
    import mujoco_warp as mjw
    import warp as wp

    from coohoi.engine.warp_gpu import warp_compatible_model

    mjm = warp_compatible_model(mjm)
    with wp.ScopedDevice(device):
        m = mjw.put_model(mjm)
        d = mjw.make_data(mjm, nworld=nworld, nconmax=nconmax, njmax=njmax)

        def steps():
            for _ in range(decimation):
                mjw.step(m, d)

        steps()
        graph = None
        if device.is_cuda:
            with wp.ScopedCapture(force_module_load=False) as capture:
                steps()
            graph = capture.graph
        run = (lambda: wp.capture_launch(graph)) if graph is not None else steps
        run()
        wp.synchronize_device(device)
        start = time.perf_counter()
        count = 0
        while time.perf_counter() - start < seconds:
            run()
            count += 1
            if count % 10 == 0:
                wp.synchronize_device(device)
        wp.synchronize_device(device)
        elapsed = time.perf_counter() - start
        overflow = int(torch.as_tensor(d.overflow.numpy()).max())
    return nworld * count / elapsed, overflow


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--envs", type=int, default=4096)
    parser.add_argument("--scene", default="box1")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--decimation", type=int, default=4)
    args = parser.parse_args(argv)

    import warp as wp

    from coohoi.bench import scene_config
    from coohoi.engine.warp_gpu import contact_buffer_sizes
    from coohoi.scene import build_scene

    wp.config.quiet = True
    wp.config.log_level = max(wp.config.log_level, wp.LOG_WARNING)
    device = wp.get_device(args.device)
    scene = build_scene(scene_config(args.scene))
    nconmax, njmax = contact_buffer_sizes(scene)
    fewer_iterations = copy.copy(scene.model)
    fewer_iterations.opt.iterations = 10
    fewer_iterations.opt.ls_iterations = 10
    variants = [
        ("as built (engine buffers)", scene.model, nconmax, njmax),
        ("nconmax 48, njmax 160", scene.model, 48, 160),
        ("no contact sensors", _without_contact_sensors(scene.model, scene), nconmax, njmax),
        ("solver iterations 10/10", fewer_iterations, nconmax, njmax),
    ]
    print(f"{args.scene}, {args.envs} worlds on {device}, decimation {args.decimation}: raw policy steps/s "
          f"(opt.iterations {scene.model.opt.iterations}, ls_iterations {scene.model.opt.ls_iterations})", flush=True)
    for name, model, ncon, nj in variants:
        rate, overflow = _rate(model, args.envs, ncon, nj, device, args.decimation, args.seconds)
        print(f"  {name:<28} {rate:>12,.0f}{'   (overflow flags ' + str(overflow) + ')' if overflow else ''}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
