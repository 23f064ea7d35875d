"""Project settings: the config loader built on the testbed registry, and the preflight hooks."""

from retraction_kedro.config.loader import ProjectConfigLoader
from retraction_kedro.hooks import PreflightHooks
from retraction_kedro.naming import model_slug

HOOKS = (PreflightHooks(),)
CONFIG_LOADER_CLASS = ProjectConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # `${slug:...}` turns a model id into a directory name: artifacts are keyed by model.
    "custom_resolvers": {"slug": model_slug},
    # conf/local/parameters_testbeds.yml adds registry entries to conf/base's instead of replacing them
    "merge_strategy": {"parameters": "soft"},
}
