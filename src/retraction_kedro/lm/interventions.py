"""Interventions on the forward pass, applied through PyTorch forward hooks.

Both act on the prompt pass of generation only (sequence length > 1), at the last prompt
token, which left padding puts at index -1 for every row of a batch; decode steps (one token
at a time under the KV cache) are left alone unless ``every_token`` is set.

- :class:`Steering` adds ``alpha * direction[layer]`` to the residual stream after chosen
  decoder layers (the paper's belief steering: +alpha toward "correct", -alpha toward "wrong").
- :class:`ValuePatch` records the attention value vectors (``v_proj`` outputs) of chosen layers
  at the last prompt token, and writes recorded vectors back in a later run.

Generation and capture call ``start_batch(rows)`` before each batch with the input indices of
its rows, so per-row state (recorded values) survives the length-sorted batching.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .architecture import decoder_layers, layer_hidden, value_projection


class Intervention:
    """Base class: hooks are attached for one generate/capture call and removed afterwards."""

    def __init__(self) -> None:
        self._handles: list[Any] = []
        self.rows: list[int] = []

    def key(self) -> Any:
        """What identifies this intervention in the resume journal's fingerprint."""
        raise NotImplementedError

    def hooks(self, model: Any) -> list[tuple[torch.nn.Module, Any]]:
        raise NotImplementedError

    def attach(self, model: Any) -> None:
        self._handles = [module.register_forward_hook(hook) for module, hook in self.hooks(model)]

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def start_batch(self, rows: Sequence[int]) -> None:
        self.rows = list(rows)


class Steering(Intervention):
    """Add ``alpha * directions[layer]`` after each layer in ``layers`` at the last prompt token."""

    def __init__(self, directions: torch.Tensor, layers: Sequence[int], alpha: float, every_token: bool = False):
        super().__init__()
        if directions.ndim != 2:
            raise ValueError(f"directions must be [layers, hidden], got {tuple(directions.shape)}")
        bad = [layer for layer in layers if not 0 <= layer < directions.shape[0]]
        if bad:
            raise ValueError(f"steering layer(s) {bad} outside the {directions.shape[0]} layers of the directions")
        self.directions, self.layers, self.alpha, self.every_token = directions, sorted(set(layers)), float(alpha), every_token

    def key(self) -> Any:
        digest = float(self.directions[self.layers].double().sum()) if self.layers else 0.0
        return ["steering", self.layers, self.alpha, self.every_token, digest]

    def hooks(self, model: Any) -> list[tuple[torch.nn.Module, Any]]:
        modules = decoder_layers(model)
        return [(modules[layer], self._hook(layer)) for layer in self.layers]

    def _hook(self, layer: int):
        def hook(module, args, output):
            hidden = layer_hidden(output)
            if hidden.shape[1] > 1 or self.every_token:
                hidden[:, -1, :] += self.alpha * self.directions[layer].to(hidden.device, hidden.dtype)
            return output

        return hook


class ValuePatch(Intervention):
    """Record (``mode='record'``) or overwrite (``mode='patch'``) the value vectors at the last prompt token.

    ``values[layer]`` is ``[rows, kv_dim]`` in input order; a recording run fills it.
    """

    def __init__(self, layers: Sequence[int], mode: str, values: dict[int, torch.Tensor] | None = None):
        super().__init__()
        if mode not in ("record", "patch"):
            raise ValueError(f"mode must be 'record' or 'patch', got {mode!r}")
        if mode == "patch" and not values:
            raise ValueError("patching needs recorded values")
        self.layers, self.mode, self.values = sorted(set(layers)), mode, dict(values or {})

    def key(self) -> Any:
        digest = [float(self.values[layer].double().sum()) for layer in self.layers] if self.mode == "patch" else None
        return ["value_patch", self.mode, self.layers, digest]

    def hooks(self, model: Any) -> list[tuple[torch.nn.Module, Any]]:
        layers = decoder_layers(model)
        return [(value_projection(layers[layer]), self._hook(layer)) for layer in self.layers]

    def _hook(self, layer: int):
        def hook(module, args, output):
            if output.shape[1] == 1:  # a decode step: the prompt's value vectors are already cached
                return output
            rows = torch.tensor(self.rows)
            if self.mode == "record":
                recorded = output[:, -1, :].detach().to("cpu", torch.float32)
                store = self.values.setdefault(layer, torch.zeros(0, recorded.shape[1]))
                if store.shape[0] <= int(rows.max()):
                    store = torch.cat([store, torch.zeros(int(rows.max()) + 1 - store.shape[0], store.shape[1])])
                store[rows] = recorded
                self.values[layer] = store
            else:
                output[:, -1, :] = self.values[layer][rows].to(output.device, output.dtype)
            return output

        return hook
