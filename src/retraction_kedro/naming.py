"""Names that must stay light to import (used by settings.py before torch loads)."""

from __future__ import annotations

import os
import re

# Where the embedded model is dequantized on first use, relative to the project: a folder of its own,
# since a catalog entry's folder (data/06_models/<slug>/<namespace>/) must never be replaced by a cache.
DEFAULT_CACHE_DIR = "data/06_models/_cache"


def model_slug(name: str) -> str:
    """File-system-safe key for a model id or path, so artifacts of two models never collide."""
    base = name.rstrip("/").split("/")[-1] if os.path.isdir(name) else name
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", base.replace("/", "--")).strip("-.")
    return slug.lower() or "model"
