"""The `[hms_management]` settings in effect, read from Airflow's configuration at call time (a
change needs no re-parse of the DAGs). Names, types and defaults: `domain.settings`. And what the
deployment commits in config/ beside its pools: its officer groups."""

from __future__ import annotations

import json
import os
from pathlib import Path

from airflow.sdk import conf

from hms_management.domain.proposal import Deployment
from hms_management.domain.settings import CONFIG_SECTION, Settings, load

# The project's folder in every Airflow process (the local stack and the image set it; the image's
# is /opt/hms).
ROOT_ENV, IMAGE_ROOT = "HMS_ROOT", "/opt/hms"
OFFICER_GROUPS = Path("config") / "officer_groups.json"


def settings() -> Settings:
    return load(lambda key: conf.get(CONFIG_SECTION, key, fallback=None))


def officer_groups() -> frozenset[str]:
    """The officer groups the deployment has (config/officer_groups.json), read at call time."""
    path = Path(os.environ.get(ROOT_ENV, IMAGE_ROOT)) / OFFICER_GROUPS
    return frozenset(json.loads(path.read_text()))


def deployment() -> Deployment:
    """What this deployment allows a proposal beyond the model: targets, officer groups."""
    return Deployment(max_targets=settings().max_targets, officer_groups=officer_groups())
