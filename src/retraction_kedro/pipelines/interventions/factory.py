"""Intervention configurations (parameters) turned into ``retraction_kedro.lm`` interventions."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from retraction_kedro.config.interventions import SteeringSetting
from retraction_kedro.lm import Steering


@dataclass(frozen=True)
class SteeringVectors:
    """Per captured layer: the mean-difference direction, the probe's direction (weights over the
    standardization scale: the gradient of its logit in the residual stream) and the mean
    residual-stream norm of the truthfulness set."""

    layers: tuple[int, ...]
    mean_difference: torch.Tensor  # [captured layers, hidden]
    residual_norm: torch.Tensor  # [captured layers]
    probe: torch.Tensor | None = None  # [captured layers, hidden]

    @classmethod
    def from_artifacts(cls, directions: dict[str, torch.Tensor], probes: dict[str, torch.Tensor] | None = None) -> "SteeringVectors":
        layers = tuple(int(layer) for layer in directions["layers"].tolist())
        probe = None
        if probes is not None:
            if tuple(int(layer) for layer in probes["layers"].tolist()) != layers:
                raise ValueError(f"probes cover layers {probes['layers'].tolist()} but the directions cover {list(layers)}")
            probe = probes["weight"].float() / probes["std"].float()
        return cls(layers, directions["mean_difference"].float(), directions["residual_norm"].float(), probe)

    def _rows(self, layers: list[int]) -> list[int]:
        position = {layer: row for row, layer in enumerate(self.layers)}
        missing = [layer for layer in layers if layer not in position]
        if missing:
            raise ValueError(f"steering needs directions for layers {missing}, but activations.layers captured {list(self.layers)}")
        return [position[layer] for layer in layers]

    def steering(self, setting: SteeringSetting, num_layers: int, position: int = -1, every_token: bool = False, ablate: bool = False) -> tuple[Steering, float]:
        """The ``Steering`` for ``setting`` on a model of ``num_layers`` layers, and its relative size:
        the mean over the band of |added vector| / mean residual norm."""
        band = setting.layers.resolve(num_layers)
        rows = self._rows(band)
        source = self.mean_difference if setting.direction == "mean_difference" else self.probe
        if source is None:
            raise ValueError("a probe direction needs the truthfulness set's probes")
        chosen = source[self._rows([setting.direction_layer]) * len(rows)] if setting.direction_layer is not None else source[rows]
        norms = self.residual_norm[rows]
        if setting.scale == "relative":
            chosen = chosen / chosen.norm(dim=1, keepdim=True).clamp(min=1e-12) * norms.unsqueeze(1)
        vectors = torch.zeros(num_layers, chosen.shape[1])
        vectors[band] = chosen
        relative = 0.0 if ablate else float((abs(setting.alpha) * chosen.norm(dim=1) / norms.clamp(min=1e-12)).mean())
        return Steering(vectors, band, 0.0 if ablate else setting.alpha, every_token, position=position, ablate=ablate), relative
