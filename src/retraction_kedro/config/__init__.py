"""Configuration: the testbed registry, typed parameter groups, and the config loader built on them."""

from .loader import ProjectConfigLoader, project_config_loader
from .parameters import ParameterError, Parameters, TestbedParameters
from .registry import FINETUNED_PREFIX, Registry, RegistryError, Study

__all__ = [
    "FINETUNED_PREFIX",
    "ParameterError",
    "Parameters",
    "ProjectConfigLoader",
    "Registry",
    "RegistryError",
    "Study",
    "TestbedParameters",
    "project_config_loader",
]
