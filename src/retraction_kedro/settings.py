"""Project settings: the config loader built on the testbed registry, and the hooks."""

from retraction_kedro.logs import route_library_output

route_library_output()  # settings is the first project module Kedro imports: before MLflow and the warnings of start-up

from retraction_kedro.config.loader import ProjectConfigLoader  # noqa: E402
from retraction_kedro.hooks import PreflightHooks  # noqa: E402
from retraction_kedro.naming import model_slug  # noqa: E402
from retraction_kedro.progress import NodeProgressHooks  # noqa: E402

HOOKS = (PreflightHooks(), NodeProgressHooks())
CONFIG_LOADER_CLASS = ProjectConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # `${slug:...}` turns a model id into a directory name: artifacts are keyed by model.
    "custom_resolvers": {"slug": model_slug},
    # conf/local/parameters_testbeds.yml adds registry entries to conf/base's instead of replacing them
    "merge_strategy": {"parameters": "soft"},
}
