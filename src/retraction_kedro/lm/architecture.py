"""Where the decoder layers of a causal LM live, across architectures."""

from __future__ import annotations

from typing import Any

import torch


def decoder_stack(model: Any) -> torch.nn.Module:
    """The base transformer (embeddings + layers + final norm) without the LM head.

    Calling it instead of the causal-LM wrapper skips the full-vocabulary logits.
    """
    if hasattr(model, "get_decoder"):
        decoder = model.get_decoder()
        if decoder is not None and decoder is not model:
            return decoder
    for name in ("model", "transformer", "gpt_neox"):
        inner = getattr(model, name, None)
        if isinstance(inner, torch.nn.Module):
            return inner
    raise TypeError(f"Cannot find the base transformer of {type(model).__name__}")


def decoder_layers(model: Any) -> torch.nn.ModuleList:
    stack = decoder_stack(model)
    for name in ("layers", "h", "blocks"):
        layers = getattr(stack, name, None)
        if isinstance(layers, torch.nn.ModuleList):
            return layers
    raise TypeError(f"Cannot find the decoder layers of {type(model).__name__} (looked for layers/h/blocks)")


def layer_hidden(output: Any) -> torch.Tensor:
    """A decoder layer's residual-stream output: a tensor in transformers 5, a tuple's head in 4.x."""
    return output[0] if isinstance(output, tuple) else output


def input_device(model: Any) -> torch.device:
    """Device of the input embeddings (the first shard under ``device_map='auto'``)."""
    return model.get_input_embeddings().weight.device


def value_projection(layer: torch.nn.Module) -> torch.nn.Module:
    """The attention value projection of a decoder layer (Llama, Qwen2, Gemma, Mistral, OLMo2: ``self_attn.v_proj``)."""
    attention = getattr(layer, "self_attn", None) or getattr(layer, "attn", None)
    projection = getattr(attention, "v_proj", None) if attention is not None else None
    if projection is None:
        raise TypeError(f"Cannot find the value projection of {type(layer).__name__} (looked for self_attn.v_proj)")
    return projection
