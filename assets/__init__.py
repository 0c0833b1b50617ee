"""Data shipped with coohoi: the humanoid MJCF and the generated reference motions (installed as coohoi.assets)."""

from pathlib import Path

ASSET_DIR = Path(__file__).resolve().parent


def asset_path(relative: str) -> Path:
    """Absolute path of a shipped asset, e.g. asset_path('mjcf/humanoid.xml')."""
    path = ASSET_DIR / relative
    if not path.exists():
        raise FileNotFoundError(f"coohoi asset not found: {relative} (looked in {ASSET_DIR})")
    return path
