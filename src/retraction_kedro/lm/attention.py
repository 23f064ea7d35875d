"""The model's own eager attention, registered under a name of ours so that its weights can be read and replaced.

Registered through transformers' ``AttentionInterface`` (with the eager mask, which carries padding
and sliding windows), it calls the attention module's own ``eager_attention_forward``: sinks
(gpt-oss), logit soft-capping (Gemma2), scaling and GQA stay the model's, so before any edit it
computes exactly what ``attn_implementation="eager"`` computes. Editors see the weights of each
prompt pass; where they change a weight, the output is corrected by the change times the values,
so an unchanged weight leaves the output as it was, bit for bit.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch

from .architecture import attention_module, decoder_layers

IMPLEMENTATION = "retraction_eager"

# (attention module, its weights [batch, heads, queries, keys]) -> weights, changed but never resized
WeightEditor = Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]
_EDITORS: list[tuple[Any, WeightEditor]] = []  # (model, editor) while attached
_PREVIOUS: dict[int, str] = {}  # id(model) -> its attention implementation before the first editor


def own_eager_attention(module: torch.nn.Module) -> Callable:
    """The ``eager_attention_forward`` of the modeling file that defines ``module``'s class."""
    function = getattr(inspect.getmodule(type(module)), "eager_attention_forward", None)
    if not callable(function):
        raise NotImplementedError(
            f"{type(module).__name__} has no eager attention function of its own ({type(module).__module__}"
            ".eager_attention_forward): attention patching is unsupported there"
        )
    return function


def patchable_attention_modules(model: Any, layers: list[int]) -> dict[torch.nn.Module, int]:
    """The attention module of each of ``layers`` (module -> layer), or one line naming what is not patchable."""
    modules, found = decoder_layers(model), {}
    for layer in layers:
        try:
            attention = attention_module(modules[layer])
            own_eager_attention(attention)
        except (TypeError, NotImplementedError) as error:
            raise NotImplementedError(f"{type(model).__name__} layer {layer}: {error}") from error
        found[attention] = layer
    return found


def _attention(module, query, key, value, attention_mask, *args, **kwargs):
    output, weights = own_eager_attention(module)(module, query, key, value, attention_mask, *args, **kwargs)
    if query.shape[2] == 1 or not _EDITORS:  # decode steps keep their own attention
        return output, weights
    edited = weights
    for _, editor in _EDITORS:
        edited = editor(module, edited)
    if edited is weights:
        return output, weights
    values = value.repeat_interleave(weights.shape[1] // value.shape[1], dim=1)  # GQA: one value head per query head
    mixed = torch.matmul(weights, values).transpose(1, 2)
    if (mixed - output).norm() > 1e-2 * output.norm():
        raise NotImplementedError(
            f"{type(module).__name__}: the attention output is not its weights times its values, so patched weights "
            "would not carry through: attention patching is unsupported there"
        )
    return output + torch.matmul(edited - weights, values).transpose(1, 2), edited


def use_patchable_attention(model: Any, editor: WeightEditor) -> None:
    """Switch ``model`` to the registered attention (once, however many editors) and activate ``editor``."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(IMPLEMENTATION, _attention)
    AttentionMaskInterface.register(IMPLEMENTATION, eager_mask)
    if not any(owner is model for owner, _ in _EDITORS):
        _PREVIOUS[id(model)] = model.config._attn_implementation
        model.set_attn_implementation(IMPLEMENTATION)
    _EDITORS.append((model, editor))


def release_attention(model: Any, editor: WeightEditor) -> None:
    """Deactivate ``editor``; the last one of ``model`` gives it back its attention implementation."""
    _EDITORS[:] = [(owner, active) for owner, active in _EDITORS if not (owner is model and active == editor)]
    if id(model) in _PREVIOUS and not any(owner is model for owner, _ in _EDITORS):
        model.set_attn_implementation(_PREVIOUS.pop(id(model)))
