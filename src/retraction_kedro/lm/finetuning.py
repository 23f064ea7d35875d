"""LoRA fine-tuning with a loss on the completion tokens only.

transformers' ``Trainer`` runs the loop (schedule, mixed precision, multi-GPU through
accelerate, checkpoints for resuming); peft provides the adapter. What is ours is the
tokenization: prompt and completion are tokenized separately, exactly as generation
sees them (the prompt alone, then new tokens), and the prompt's labels are -100.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .batching import fingerprint
from .loading import ModelSpec, load_weights, release_models
from .prompts import Message, continuation_prompt

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100  # label value that cross-entropy skips


@dataclass(frozen=True)
class LoraSettings:
    """The paper's recipe (lr 1e-4, 2 epochs, cosine, warmup 0.1, batch 8) on LoRA over all linear layers."""

    learning_rate: float = 1e-4
    epochs: float = 2
    batch_size: int = 8
    scheduler: str = "cosine"
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: str | list[str] = "all-linear"
    seed: int = 0
    checkpoint_every_steps: int = 50  # a crashed run resumes from the last of these
    gradient_checkpointing: bool = False  # trade compute for memory (large models)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "LoraSettings":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"Unknown key(s) in the 'sft.training' parameters: {unknown}; expected some of {sorted(known)}")
        return cls(**params)


def completion_features(tokenizer: Any, prompt: str, completion: str) -> dict[str, list[int]]:
    """Token ids with labels only on ``completion`` (the prompt's labels are ``IGNORE_INDEX``)."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    if not completion_ids:
        raise ValueError(f"Empty completion for prompt ending {prompt[-40:]!r}")
    return {
        "input_ids": prompt_ids + completion_ids,
        "attention_mask": [1] * (len(prompt_ids) + len(completion_ids)),
        "labels": [IGNORE_INDEX] * len(prompt_ids) + completion_ids,
    }


def sft_features(tokenizer: Any, conversations: Sequence[Sequence[Message]], completions: Sequence[str]) -> list[dict[str, list[int]]]:
    """Each conversation ends with the assistant's open answer; its completion ends the turn."""
    if len(conversations) != len(completions):
        raise ValueError(f"{len(conversations)} conversations but {len(completions)} completions")
    end_of_turn = tokenizer.eos_token or ""
    return [
        completion_features(tokenizer, continuation_prompt(tokenizer, messages), completion + end_of_turn)
        for messages, completion in zip(conversations, completions)
    ]


@dataclass
class FineTuneResult:
    adapter: Any  # the peft model: ``save_pretrained`` writes the adapter only
    tokenizer: Any
    log_history: list[dict[str, float]] = field(default_factory=list)  # one entry per optimizer step

    def merged_export(self) -> "MergedModelExport":
        return MergedModelExport(self.adapter)


class MergedModelExport:
    """Saves the base weights with the adapter folded in. Merging changes the peft model in place,
    so it happens at save time, after the adapter itself has been written."""

    def __init__(self, adapter: Any):
        self._adapter = adapter

    def save_pretrained(self, directory: str | Path) -> None:
        self._adapter.merge_and_unload().save_pretrained(directory)


def _checkpointing(arguments: type, enabled: bool) -> dict[str, bool]:
    """transformers renamed ``gradient_checkpointing`` to ``activation_checkpointing`` during 5.x."""
    if not enabled:
        return {}
    fields = getattr(arguments, "__dataclass_fields__", {})
    return {"activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing": True}


def fine_tune_lora(
    spec: ModelSpec,
    conversations: Sequence[Sequence[Message]],
    completions: Sequence[str],
    settings: LoraSettings,
    resume_dir: str | None = None,
    show_progress: bool = True,
) -> FineTuneResult:
    """Train a LoRA adapter on ``spec``'s weights; resumes from the last checkpoint of the same work."""
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments, set_seed
    from transformers.trainer_utils import get_last_checkpoint

    if not conversations:
        raise ValueError("No fine-tuning examples: the continuation train set is empty")
    release_models()  # the inference copy would double the memory
    tokenizer, model = load_weights(spec)
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    features = sft_features(tokenizer, conversations, completions)
    device = spec.resolved_device()
    if not spec.device_map:
        model.to(device)
    set_seed(settings.seed)  # LoRA's A matrices are drawn before the Trainer seeds anything
    if settings.gradient_checkpointing:
        model.enable_input_require_grads()  # frozen embeddings would cut the gradient at the first checkpoint
    lora = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        task_type="CAUSAL_LM",
    )
    adapter = get_peft_model(model, lora)
    # Checkpoints live under resume_dir, keyed by the work; without one, in a scratch folder (no resuming).
    root = Path(resume_dir) if resume_dir else Path(tempfile.mkdtemp(prefix="sft-"))
    work = root / f"sft-{fingerprint(spec, asdict(settings), features)}"
    dtype = spec.resolved_dtype()
    arguments = TrainingArguments(
        output_dir=str(work),
        learning_rate=settings.learning_rate,
        num_train_epochs=settings.epochs,
        per_device_train_batch_size=settings.batch_size,
        lr_scheduler_type=settings.scheduler,
        warmup_steps=settings.warmup_ratio,  # a float below 1 is a fraction of all steps
        weight_decay=settings.weight_decay,
        max_grad_norm=settings.max_grad_norm,
        seed=settings.seed,
        data_seed=settings.seed,
        bf16=dtype == torch.bfloat16,
        fp16=dtype == torch.float16,
        use_cpu=device == "cpu" and not spec.device_map,
        logging_steps=1,
        save_strategy="steps",
        save_steps=settings.checkpoint_every_steps,
        save_total_limit=1,
        report_to="none",
        disable_tqdm=not show_progress,
        **_checkpointing(TrainingArguments, settings.gradient_checkpointing),
        remove_unused_columns=False,
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=adapter,
        args=arguments,
        train_dataset=features,
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX),
    )
    checkpoint = get_last_checkpoint(str(work)) if work.is_dir() else None
    if checkpoint:
        logger.info("Resuming fine-tuning from %s", checkpoint)
    logger.info(
        "Fine-tuning %s with LoRA (rank %d) on %d examples, %s epochs, on %s",
        spec.name, settings.rank, len(features), settings.epochs, device,
    )  # fmt: skip
    trainer.train(resume_from_checkpoint=checkpoint)
    history = [
        {"step": entry["step"], "loss": entry["loss"], "learning_rate": entry.get("learning_rate", 0.0), "epoch": entry.get("epoch", 0.0)}
        for entry in trainer.state.log_history
        if "loss" in entry
    ]
    shutil.rmtree(work if resume_dir else root, ignore_errors=True)  # finished: the checkpoints are no longer needed
    adapter.eval()
    return FineTuneResult(adapter=adapter, tokenizer=tokenizer, log_history=history)
