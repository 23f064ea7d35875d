"""Interventions on the forward pass, applied through PyTorch forward hooks.

Both act on the prompt pass of generation only (sequence length > 1), at the last prompt
token, which left padding puts at index -1 for every row of a batch; decode steps (one token
at a time under the KV cache) are left alone unless ``every_token`` is set.

- :class:`Steering` adds ``alpha * direction[layer]`` to the residual stream after chosen
  decoder layers (the paper's belief steering: +alpha toward "correct", -alpha toward "wrong").
- :class:`ValuePatch` records the attention value vectors of chosen layers at the last prompt
  token (``v_proj`` outputs, or the value features of a fused projection: Phi-3, GPT-NeoX), and
  writes recorded vectors back in a later run.
- :class:`AttentionPatch` does the same for the attention weights of one query position, through
  the model's own eager attention registered with transformers' ``AttentionInterface`` (lm/attention.py).

Generation and capture call ``start_batch(rows)`` before each batch with the input indices of
its rows, so per-row state (recorded values) survives the length-sorted batching.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from typing import Any

import torch

from .architecture import decoder_layers, layer_hidden, value_output
from .contracts import LibraryContractError
from .attention import patchable_attention_modules, release_attention, use_patchable_attention


class Intervention:
    """Base class: hooks are attached for one generate/capture call and removed afterwards.

    ``records`` is true for interventions that collect state during the forward pass: the
    batches of such a call must all run, so a resume journal cannot stand in for them.
    Every hook must fire on each batch's prompt pass (``check_fired``): a module the model no
    longer calls would otherwise leave the run unchanged, with no error.
    """

    records = False

    def __init__(self) -> None:
        self._handles: list[Any] = []
        self.rows: list[int] = []
        self.key_mask: torch.Tensor | None = None
        self.fired: set[int] = set()  # layers whose hook ran since the batch started

    def key(self) -> Any:
        """What identifies this intervention in the resume journal's fingerprint."""
        raise NotImplementedError

    def hooks(self, model: Any) -> list[tuple[int, torch.nn.Module, Any]]:
        """(layer, module, forward hook) for each module the intervention acts on."""
        raise NotImplementedError

    def attach(self, model: Any) -> None:
        self._handles = [module.register_forward_hook(self._counted(layer, hook)) for layer, module, hook in self.hooks(model)]

    def _counted(self, layer: int, hook: Any) -> Any:
        def counted(module, args, output):
            self.fired.add(layer)
            return hook(module, args, output)

        return counted

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def start_batch(self, rows: Sequence[int], key_mask: torch.Tensor | None = None) -> None:
        """A prompt pass of input ``rows`` begins; ``key_mask`` [rows, keys] marks each row's real (unpadded) keys."""
        self.rows = list(rows)
        self.key_mask = key_mask
        self.fired = set()

    def start_steps(self, rows: torch.Tensor) -> None:
        """The decode steps from now on run input ``rows`` (one per batch slot); per-row state follows them."""

    def layers_acted_on(self) -> list[int]:
        raise NotImplementedError

    def check_fired(self, up_to_layer: int | None = None) -> None:
        """Raise unless every layer this intervention acts on (up to ``up_to_layer``, where a capture
        stops) ran its hook since the batch started."""
        missing = [
            layer for layer in self.layers_acted_on() if (up_to_layer is None or layer <= up_to_layer) and layer not in self.fired
        ]
        if missing:
            raise LibraryContractError(
                f"{type(self).__name__}: the hooks of layer(s) {missing} never ran in the prompt pass, so the model "
                "ran without them (a module the installed transformers no longer calls?)"
            )


@contextmanager
def attached(lm: Any, interventions: Sequence[Intervention]):
    """Hooks of ``interventions`` on ``lm``'s model for the duration of one generate/capture call.

    If one refuses to attach, those attached before it are detached again.
    """
    try:
        for intervention in interventions:
            intervention.attach(lm.model)
        yield
    finally:
        for intervention in interventions:
            intervention.detach()


class Steering(Intervention):
    """Add ``alpha * directions[layer]`` after each layer in ``layers`` at prompt ``position``
    (-1: the last prompt token; -2 with the fixed `` is`` suffix: the answer's last token).
    With ``ablate`` the component along the direction is removed instead (alpha is unused)."""

    def __init__(
        self,
        directions: torch.Tensor,
        layers: Sequence[int],
        alpha: float,
        every_token: bool = False,
        position: int = -1,
        ablate: bool = False,
    ):
        super().__init__()
        self.position, self.ablate = position, ablate
        if directions.ndim != 2:
            raise ValueError(f"directions must be [layers, hidden], got {tuple(directions.shape)}")
        bad = [layer for layer in layers if not 0 <= layer < directions.shape[0]]
        if bad:
            raise ValueError(f"steering layer(s) {bad} outside the {directions.shape[0]} layers of the directions")
        self.directions, self.layers, self.alpha, self.every_token = directions, sorted(set(layers)), float(alpha), every_token

    def key(self) -> Any:
        digest = float(self.directions[self.layers].double().sum()) if self.layers else 0.0
        return ["steering", self.layers, self.alpha, self.every_token, self.position, self.ablate, digest]

    def layers_acted_on(self) -> list[int]:
        return self.layers

    def hooks(self, model: Any) -> list[tuple[int, torch.nn.Module, Any]]:
        modules = decoder_layers(model)
        return [(layer, modules[layer], self._hook(layer)) for layer in self.layers]

    def _hook(self, layer: int):
        def hook(module, args, output):
            hidden = layer_hidden(output)
            position = self.position if hidden.shape[1] > 1 else (-1 if self.every_token else None)
            if position is not None:
                v = self.directions[layer].to(hidden.device, hidden.dtype)
                if self.ablate:  # remove the component along the direction
                    unit = v / v.norm().clamp(min=1e-12)
                    hidden[:, position, :] -= (hidden[:, position, :] @ unit).unsqueeze(-1) * unit
                else:
                    hidden[:, position, :] += self.alpha * v
            return output

        return hook


class RowSteering(Intervention):
    """Steering that differs by input row: row ``i`` is steered as ``per_row[i]`` (a :class:`Steering`, or None:
    not steered). Settings that differ only in their vectors run as one call, so their rows share batches.

    Every row's steering acts at the same prompt ``position`` and, with ``every_token``, on every generated
    token; ablation is not supported here (run it as a :class:`Steering` of its own).
    """

    def __init__(self, per_row: Sequence[Steering | None]):
        super().__init__()
        steerings = [s for s in per_row if s is not None]
        if not steerings:
            raise ValueError("RowSteering needs at least one steered row")
        if any(s.ablate for s in steerings):
            raise ValueError("RowSteering adds vectors; run an ablation as a Steering of its own")
        if len({(s.position, s.every_token) for s in steerings}) > 1:
            raise ValueError("every row's steering must act at the same position, and on every token or not")
        self.per_row = list(per_row)
        self.position, self.every_token = steerings[0].position, steerings[0].every_token
        self.layers = sorted({layer for s in steerings for layer in s.layers})
        self._prompt: dict[int, torch.Tensor] = {}
        self._steps: dict[int, torch.Tensor] = {}

    def key(self) -> Any:
        distinct = {id(s): s for s in self.per_row if s is not None}
        index = {key: number for number, key in enumerate(distinct)}
        return ["row_steering", [s.key() for s in distinct.values()], [index.get(id(s)) for s in self.per_row]]

    def layers_acted_on(self) -> list[int]:
        return self.layers

    def _vectors(self, rows: Sequence[int]) -> dict[int, torch.Tensor]:
        """Per steered layer, the vector added to each of ``rows`` ([rows, hidden]; zero where a row is not steered there)."""
        steerings = [self.per_row[row] for row in rows]
        hidden = next(s for s in self.per_row if s is not None).directions.shape[1]
        vectors = {}
        for layer in self.layers:
            vectors[layer] = torch.stack([
                s.alpha * s.directions[layer].float() if s is not None and layer in s.layers else torch.zeros(hidden)
                for s in steerings
            ])  # fmt: skip
        return vectors

    def start_batch(self, rows: Sequence[int], key_mask: torch.Tensor | None = None) -> None:
        super().start_batch(rows, key_mask)
        self._prompt = self._vectors(rows)

    def start_steps(self, rows: torch.Tensor) -> None:
        if self.every_token and len(rows):
            self._steps = self._vectors(rows.tolist())

    def hooks(self, model: Any) -> list[tuple[int, torch.nn.Module, Any]]:
        modules = decoder_layers(model)
        return [(layer, modules[layer], self._hook(layer)) for layer in self.layers]

    def _hook(self, layer: int):
        def hook(module, args, output):
            hidden = layer_hidden(output)
            if hidden.shape[1] > 1:
                hidden[:, self.position, :] += self._prompt[layer].to(hidden.device, hidden.dtype)
            elif self.every_token:
                hidden[:, -1, :] += self._steps[layer].to(hidden.device, hidden.dtype)
            return output

        return hook


class ValuePatch(Intervention):
    """Record (``mode='record'``) or overwrite (``mode='patch'``) the value vectors at prompt ``position``.

    ``values[layer]`` is ``[rows, kv_dim]`` in input order; a recording run fills it.
    """

    def __init__(self, layers: Sequence[int], mode: str, values: dict[int, torch.Tensor] | None = None, position: int = -1):
        super().__init__()
        self.position = position
        if mode not in ("record", "patch"):
            raise ValueError(f"mode must be 'record' or 'patch', got {mode!r}")
        if mode == "patch" and not values:
            raise ValueError("patching needs recorded values")
        self.layers, self.mode, self.values = sorted(set(layers)), mode, dict(values or {})
        self.records = mode == "record"

    def key(self) -> Any:
        digest = [float(self.values[layer].double().sum()) for layer in self.layers] if self.mode == "patch" else None
        return ["value_patch", self.mode, self.layers, self.position, digest]

    def layers_acted_on(self) -> list[int]:
        return self.layers

    def hooks(self, model: Any) -> list[tuple[int, torch.nn.Module, Any]]:
        outputs = {layer: value_output(model, layer) for layer in self.layers}
        return [(layer, outputs[layer].projection, self._hook(layer, outputs[layer].features)) for layer in self.layers]

    def _hook(self, layer: int, features: slice | torch.Tensor):
        def hook(module, args, output):
            if output.shape[1] == 1:  # a decode step: the prompt's value vectors are already cached
                return output
            rows = torch.tensor(self.rows)
            columns = features.to(output.device) if isinstance(features, torch.Tensor) else features
            if self.mode == "record":
                recorded = output[:, self.position, columns].detach().to("cpu", torch.float32)
                store = self.values.setdefault(layer, torch.zeros(0, recorded.shape[1]))
                if store.shape[0] <= int(rows.max()):
                    store = torch.cat([store, torch.zeros(int(rows.max()) + 1 - store.shape[0], store.shape[1])])
                store[rows] = recorded
                self.values[layer] = store
            else:
                output[:, self.position, columns] = self.values[layer][rows].to(output.device, output.dtype)
            return output

        return hook


class AttentionPatch(Intervention):
    """Record or overwrite the attention weights of the query at ``position`` (prompt pass only).

    ``weights[layer]`` holds one ``[heads, keys]`` tensor per input row; patching needs the same
    prompts in the same batches (hence the same padded length). ``heads`` limits patching to some
    heads per layer (e.g. the top-k by change, see :func:`top_changed_heads`).
    """

    def __init__(
        self,
        layers: Sequence[int],
        mode: str,
        weights: dict[int, dict[int, torch.Tensor]] | None = None,
        position: int = -1,
        heads: dict[int, list[int]] | None = None,
    ):
        super().__init__()
        if mode not in ("record", "patch"):
            raise ValueError(f"mode must be 'record' or 'patch', got {mode!r}")
        if mode == "patch" and not weights:
            raise ValueError("patching needs recorded attention weights")
        self.layers, self.mode, self.position, self.heads = set(layers), mode, position, heads
        self.records = mode == "record"
        self.weights: dict[int, dict[int, torch.Tensor]] = {k: dict(v) for k, v in (weights or {}).items()}
        self._model: Any = None
        self._modules: dict[torch.nn.Module, int] = {}

    def key(self) -> Any:
        digest = None
        if self.mode == "patch":
            digest = [float(sum(t.double().sum() for t in self.weights[layer].values())) for layer in sorted(self.layers)]
        return ["attention_patch", self.mode, sorted(self.layers), self.position, self.heads, digest]

    def attach(self, model: Any) -> None:
        self._modules = patchable_attention_modules(model, sorted(self.layers))
        self._model = model
        use_patchable_attention(model, self.apply)

    def detach(self) -> None:
        if self._model is not None:
            release_attention(self._model, self.apply)
            self._model = None

    def layers_acted_on(self) -> list[int]:
        return sorted(self.layers)

    def apply(self, module: torch.nn.Module, weights: torch.Tensor) -> torch.Tensor:
        layer = self._modules.get(module)  # called on prompt passes only: decode steps keep their own attention
        if layer is None:
            return weights
        self.fired.add(layer)
        store = self.weights.setdefault(layer, {})
        keys = self._real_keys(weights)
        if self.mode == "record":  # each row's weights over its real keys: independent of the batch it ran in
            for slot, row in enumerate(self.rows):
                store[row] = weights[slot, :, self.position][:, keys[slot]].detach().to("cpu", torch.float32)
            return weights
        patched = weights.clone()
        heads = torch.tensor(self.heads.get(layer, []) if self.heads is not None else range(weights.shape[1]), dtype=torch.long)
        for slot, row in enumerate(self.rows):
            recorded = store[row]
            if recorded.shape[-1] != int(keys[slot].sum()):
                raise ValueError(
                    f"recorded attention of row {row} covers {recorded.shape[-1]} keys but this run has "
                    f"{int(keys[slot].sum())}: patch the same prompts (with the same suffix)"
                )
            columns = keys[slot].nonzero().squeeze(1)
            query = patched[slot, :, self.position]  # [heads, keys], a view
            query[heads.to(query.device).unsqueeze(1), columns.unsqueeze(0)] = recorded[heads].to(weights.device, weights.dtype)
        return patched

    def _real_keys(self, weights: torch.Tensor) -> torch.Tensor:
        """[rows, keys] bool: the keys that are tokens of each row (its prefix and prompt), not padding."""
        if self.key_mask is None:
            return torch.ones(weights.shape[0], weights.shape[-1], dtype=torch.bool, device=weights.device)
        if self.key_mask.shape != (weights.shape[0], weights.shape[-1]):
            raise ValueError(f"the key mask {tuple(self.key_mask.shape)} does not fit the attention weights {tuple(weights.shape)}")
        return self.key_mask.to(weights.device).bool()


def top_changed_heads(
    before: dict[int, dict[int, torch.Tensor]], after: dict[int, dict[int, torch.Tensor]], k: int
) -> dict[int, list[int]]:
    """The ``k`` (layer, head) pairs whose attention weights changed most (mean L1 over rows)."""
    scores = []
    for layer, rows in before.items():
        change = torch.stack([(after[layer][row] - weights).abs().sum(-1) for row, weights in rows.items()]).mean(0)
        scores += [(float(value), layer, head) for head, value in enumerate(change)]
    chosen: dict[int, list[int]] = {}
    for _, layer, head in sorted(scores, reverse=True)[:k]:
        chosen.setdefault(layer, []).append(head)
    return chosen
