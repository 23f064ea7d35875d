"""Where the decoder layers of a causal LM live, across architectures."""

from __future__ import annotations

from dataclasses import dataclass
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


ATTENTION_NAMES = ("self_attn", "attn", "attention")


def attention_module(layer: torch.nn.Module) -> torch.nn.Module:
    """The attention block of a decoder layer (``self_attn``; GPT-NeoX: ``attention``)."""
    for name in ATTENTION_NAMES:
        module = getattr(layer, name, None)
        if isinstance(module, torch.nn.Module):
            return module
    raise TypeError(f"{type(layer).__name__} has no attention module (looked for {'/'.join(ATTENTION_NAMES)})")


@dataclass(frozen=True)
class ValueOutput:
    """The linear layer whose output holds a decoder layer's attention values, and which output features they are.

    ``features`` indexes the last dimension; the values it selects are ordered head by head, as a
    separate ``v_proj`` lays them out, so recordings compare across architectures.
    """

    projection: torch.nn.Module
    features: slice | torch.Tensor


def value_output(model: Any, layer: int) -> ValueOutput:
    """Where the value vectors of decoder layer ``layer``'s attention come out (head counts and sizes from the config).

    - ``v_proj`` (Llama, Mistral, Qwen, OLMo2, Gemma, gpt-oss, Granite): a projection of its own.
    - ``qkv_proj`` (Phi-3): one projection, laid out as all queries, all keys, all values.
    - ``query_key_value`` (GPT-NeoX): one projection, laid out head by head as (query, key, value).
    """
    attention, config = attention_module(decoder_layers(model)[layer]), model.config.get_text_config()
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    if isinstance(getattr(attention, "v_proj", None), torch.nn.Module):
        return ValueOutput(attention.v_proj, slice(None))
    if isinstance(getattr(attention, "qkv_proj", None), torch.nn.Module):
        projection, expected = attention.qkv_proj, (heads + 2 * kv_heads) * head_dim
        features = slice((heads + kv_heads) * head_dim, expected)
    elif isinstance(getattr(attention, "query_key_value", None), torch.nn.Module):
        projection, expected = attention.query_key_value, 3 * heads * head_dim
        per_head = torch.arange(2 * head_dim, 3 * head_dim)
        features = (torch.arange(heads).unsqueeze(1) * 3 * head_dim + per_head).flatten()
    else:
        children = ", ".join(name for name, _ in attention.named_children())
        raise TypeError(
            f"Cannot find the value projection of {type(attention).__name__} (children: {children}); "
            "known layouts: v_proj, qkv_proj (queries|keys|values), query_key_value (per head query|key|value)"
        )
    if getattr(projection, "out_features", expected) != expected:
        raise TypeError(
            f"{type(attention).__name__}: fused projection has {projection.out_features} outputs, but {heads} query "
            f"heads and {kv_heads} key/value heads of size {head_dim} make {expected}: the value slice would be wrong"
        )
    return ValueOutput(projection, features)
