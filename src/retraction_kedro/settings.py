"""Project settings: the config loader with the resolvers our catalog paths use."""

from kedro.config import OmegaConfigLoader

from retraction_kedro.naming import model_slug

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # `${slug:...}` turns a model id into a directory name: artifacts are keyed by model.
    "custom_resolvers": {"slug": model_slug},
}
