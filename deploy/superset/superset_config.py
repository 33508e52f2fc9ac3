"""Superset settings for the compose stack: everything secret or site-specific from the environment."""

import os

SECRET_KEY = os.environ["SUPERSET_SECRET_KEY"]
SQLALCHEMY_DATABASE_URI = os.environ["SUPERSET_DATABASE_URI"]

_CACHE_REDIS_URL = os.environ.get("SUPERSET_CACHE_REDIS_URL")
if _CACHE_REDIS_URL:
    CACHE_CONFIG = {
        "CACHE_TYPE": "RedisCache",
        "CACHE_DEFAULT_TIMEOUT": 300,
        "CACHE_KEY_PREFIX": "c360_superset_",
        "CACHE_REDIS_URL": _CACHE_REDIS_URL,
    }
    DATA_CACHE_CONFIG = {**CACHE_CONFIG, "CACHE_KEY_PREFIX": "c360_superset_data_"}

# The dashboards are read-only views over the masked `bi` schema: no file uploads into the warehouse.
FEATURE_FLAGS = {"DASHBOARD_RBAC": True}
BABEL_DEFAULT_LOCALE = "zh"
LANGUAGES = {"zh": {"flag": "cn", "name": "简体中文"}, "en": {"flag": "us", "name": "English"}}
