"""The `[hms_management]` settings in effect, read from Airflow's configuration at call time (a
change needs no re-parse of the DAGs). Names, types and defaults: `domain.settings`."""

from __future__ import annotations

from airflow.sdk import conf

from hms_management.domain.settings import CONFIG_SECTION, Settings, load


def settings() -> Settings:
    return load(lambda key: conf.get(CONFIG_SECTION, key, fallback=None))
