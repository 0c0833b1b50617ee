"""Importers of real motion data into the coohoi clip format (coohoi.motion.clip.MotionClip).

- `ase`: ASE / CooHOI `.npy` motion files (poselib SkeletonMotion dictionaries), same 15-body skeleton as ours;
- `amass`: AMASS `.npz` (SMPL-H or SMPL-X parameters) through `smplx` and the user's model files, retargeted;
- `bvh`: BVH files (CMU-style hierarchy), retargeted.

Every importer refuses malformed or hostile input with coohoi.motion.clip.MotionFormatError naming the file.
"""

from coohoi.motion.importers.safe_load import UnsafePickleError

__all__ = ["UnsafePickleError"]
