"""Loaded at start-up by every Python process of a stack that `python -m hms_bench.profile` starts
with this folder first on its PYTHONPATH; idle anywhere else (no HMS_PROFILE_DIR)."""

import os

if os.environ.get("HMS_PROFILE_DIR"):
    from hms_bench.profile_hooks import install

    install()
