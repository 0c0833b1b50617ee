"""coohoi: physically simulated humanoids that learn to carry objects, alone and together.

Conventions, settled once for the whole project:
- Quaternions are (w, x, y, z), as MuJoCo stores them (see `coohoi.rotations`). Importers of formats that use
  (x, y, z, w) convert at the boundary.
- Body and DoF order are those of the reference humanoid (see `coohoi.humanoid`).
- World frame: z up, gravity -z. Heading frame = rotation by the root's yaw.
"""

__version__ = "0.1.0"
