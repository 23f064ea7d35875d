"""Tiny random-weight models of the architectures researchers use, built in code (no download).

The oracle tests and the self-check (``retraction_kedro.doctor``) run every mechanism on them. Each
config turns on what sets its architecture apart: sliding windows shorter than the prompts (Mistral,
Gemma2, Gemma3, gpt-oss), attention logit soft-capping (Gemma2), attention sinks (gpt-oss), MoE
routing (Qwen3-MoE, gpt-oss), q/k norms (Qwen3, OLMo2, Gemma3), a scaling other than
1/sqrt(head_dim) (Gemma2, Gemma3, Granite), GQA (all but GPT-NeoX), and fused QKV projections
(Phi-3: all queries | keys | values; GPT-NeoX: per head query | key | value). The prompts share a
system turn, so capture and generation run it once (shared prefix) where the model allows it.
"""

from __future__ import annotations

from typing import Any

import torch

from .contracts import ensure_exact_attention
from .loading import LanguageModel, ModelSpec
from .prompts import answer_messages, continuation_prompt

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "Name a city in Germany. Berlin is a city in Germany.",
    "Lyon is not in Germany, it is in France.\nWhich country is Lyon in? France.",
    "The capital of Italy is Rome. Paris is the capital of France. Madrid, Spain.",
    "Actually, that is wrong. No, I made a mistake: Lyon is a city in France.",
]
QUESTIONS = [
    ("Name a city in Germany.", "Lyon"),
    ("Which country is Lyon in? Answer with the country that the city belongs to.", "France"),
    ("Capital of Italy?", "Rome"),
    ("Name a city.", "Paris"),
    ("Name a city in France that is not the capital of France and is large.", "Berlin"),
]
SYSTEM = "Name a city in Germany. Berlin is a city in Germany."

WINDOW = 6  # shorter than every prompt (30-45 tokens)
ALTERNATING = ["sliding_attention", "full_attention", "sliding_attention"]
ARCHITECTURES: dict[str, tuple[str, dict[str, Any]]] = {
    "llama": ("LlamaConfig", {}),
    "mistral": ("MistralConfig", {"sliding_window": WINDOW}),
    "qwen2": ("Qwen2Config", {}),
    "qwen3": ("Qwen3Config", {"head_dim": 16}),
    "qwen3_moe": ("Qwen3MoeConfig", {"head_dim": 16, "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32}),
    "olmo2": ("Olmo2Config", {}),
    "gemma2": (
        "Gemma2Config",
        {"head_dim": 16, "query_pre_attn_scalar": 24, "sliding_window": WINDOW, "layer_types": ALTERNATING,
         "attn_logit_softcapping": 4.0},
    ),  # fmt: skip
    "gemma3": (
        "Gemma3TextConfig",
        {"head_dim": 16, "query_pre_attn_scalar": 24, "sliding_window": WINDOW, "layer_types": ALTERNATING},
    ),
    "phi3": ("Phi3Config", {}),
    "gpt_neox": ("GPTNeoXConfig", {"num_key_value_heads": None, "rotary_pct": 0.5}),
    "gpt_oss": (
        "GptOssConfig",
        {"head_dim": 16, "num_local_experts": 4, "num_experts_per_tok": 2, "sliding_window": WINDOW,
         "layer_types": ALTERNATING,
         "rope_parameters": {"rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0,
                             "original_max_position_embeddings": 8}},
    ),  # fmt: skip
    "granite": (
        "GraniteConfig",
        {"attention_multiplier": 0.1, "embedding_multiplier": 2.0, "residual_multiplier": 0.5, "logits_scaling": 2.0},
    ),
}


def tiny_tokenizer() -> Any:
    """A byte-level BPE of 400 tokens with a ChatML template, trained on :data:`CORPUS`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<|im_start|>", "<|im_end|>"]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(CORPUS * 4, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="<|im_end|>", bos_token="<|im_start|>")
    fast.chat_template = CHATML
    return fast


def tiny_model(
    architecture: str, layers: int = 3, seed: int = 0, device: str = "cpu", dtype: torch.dtype = torch.float32
) -> LanguageModel:
    """A random ``architecture`` model (hidden 64, 4 heads, 2 KV heads) whose weights are wide enough that hidden
    states, attention and routing vary across inputs."""
    import transformers
    from transformers import AutoModelForCausalLM

    tokenizer = tiny_tokenizer()
    config_class, extra = ARCHITECTURES[architecture]
    settings = {
        "vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": layers,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256,
        "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": tokenizer.bos_token_id, "tie_word_embeddings": False,
    }  # fmt: skip
    settings = {key: value for key, value in {**settings, **extra}.items() if value is not None}
    if "layer_types" in settings:
        settings["layer_types"] = (settings["layer_types"] * layers)[:layers]
    config = getattr(transformers, config_class)(**settings)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.dim() >= 2:  # linear, embedding and expert weights; norms stay as built
                parameter.normal_(0, 0.2)
            elif name.endswith("sinks"):  # gpt-oss: one sink logit per head, large enough to take real weight
                parameter.normal_(0, 2.0)
    model.to(device=device, dtype=dtype)
    model.eval()
    ensure_exact_attention(model)  # as loading does: Gemma2 on SDPA (transformers < 5.21) drops its soft-capping
    spec = ModelSpec(name=f"tiny-random-{architecture}", device=device, dtype=str(dtype).removeprefix("torch."))
    return LanguageModel(model=model, tokenizer=tokenizer, spec=spec)


def chat_prompts(lm: LanguageModel) -> list[str]:
    """Continuation prompts of :data:`QUESTIONS` that share the system turn :data:`SYSTEM`."""
    return [continuation_prompt(lm.tokenizer, answer_messages(q, a, system=SYSTEM)) for q, a in QUESTIONS]
