"""`coohoi export` (being written)."""
