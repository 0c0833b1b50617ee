"""coohoi: install with `pip install -e .[test]` (see README.md).

The repository keeps `envs/`, `agents/`, `cfg/` and `assets/` at the top level for readability; they install as
`coohoi.envs`, `coohoi.agents`, `coohoi.cfg` and `coohoi.assets`, so nothing generic lands in site-packages.
"""

from setuptools import find_packages, setup

TOP_LEVEL = {"envs": "coohoi.envs", "agents": "coohoi.agents", "cfg": "coohoi.cfg", "assets": "coohoi.assets"}


def _packages():
    packages = {"coohoi": "coohoi"}
    packages.update({f"coohoi.{sub}": f"coohoi/{sub.replace('.', '/')}" for sub in find_packages("coohoi")})
    for folder, name in TOP_LEVEL.items():
        packages[name] = folder
        packages.update({f"{name}.{sub}": f"{folder}/{sub.replace('.', '/')}" for sub in find_packages(folder)})
    return packages


PACKAGE_DIR = _packages()

setup(
    name="coohoi",
    version="0.1.0",
    description="Physically simulated humanoids that learn to carry objects, alone and together (MuJoCo, AMP, MAPPO)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=list(PACKAGE_DIR),
    package_dir=PACKAGE_DIR,
    package_data={
        "coohoi.cfg": ["*.yaml", "**/*.yaml"],
        "coohoi.assets": ["mjcf/*.xml", "motions/*.npz", "motions/*.yaml"],
    },
    install_requires=[
        # A lower bound only, so that installing coohoi keeps a GPU user's CUDA torch. On a CPU machine name the CPU
        # build with the install (README: `pip install -e . torch==2.13.0`): a bare torch pulls a multi-GB CUDA build.
        # 2.5: torch.serialization.safe_globals, which checkpoint loading uses.
        "torch>=2.5",
        "numpy>=1.26",
        "mujoco>=4.0.0",
        "gymnasium>=1.0",
        "hydra-core>=1.3",
        "rl-games>=1.6.1",
        "tensorboard>=2.15",
        "trimesh>=4.0",
        "smplx>=0.1.28",
        "imageio>=2.30",
        "imageio-ffmpeg>=0.4",  # mp4 writing for `coohoi motion render` (ships its own ffmpeg binary)
        "pillow>=10",  # `coohoi render`'s text overlay (and the viewer test's screenshots of an X display)
        "pyyaml",
        "scipy>=1.10",
        "wandb",  # optional logging (wandb.enabled=true), offline by default
        "onnx>=1.16",  # `coohoi export`
        "onnxruntime>=1.18",  # `coohoi export` parity check and `coohoi eval` of exported policies
    ],
    extras_require={
        "test": ["pytest>=8", "hypothesis>=6.100", "mujoco-warp>=4.0.0", "warp-lang>=1.9"],
        "gpu": ["mujoco-warp>=4.0.0", "warp-lang>=1.9"],
        "plot": ["matplotlib>=3.7"],  # scripts/plot_learning.py
    },
    entry_points={"console_scripts": ["coohoi=coohoi.cli:main"]},
)
