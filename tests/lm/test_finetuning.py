"""LoRA fine-tuning on a tiny random model saved to disk: masking, a training step, round trip."""

from __future__ import annotations

import pytest
import torch

from retraction_kedro.datasets import ModelDirectoryDataset
from retraction_kedro.lm import (
    GenerationSettings,
    LanguageModel,
    LoraSettings,
    ModelSpec,
    completion_features,
    continuation_prompt,
    fine_tune_lora,
    generate_texts,
    load_language_model,
    release_models,
    sft_features,
)
from retraction_kedro.lm.finetuning import IGNORE_INDEX
from tests.conftest import build_tiny_lm

CONVERSATIONS = [
    [{"role": "user", "content": "Name a city in Germany."}, {"role": "assistant", "content": name}]
    for name in ("Berlin", "Lyon", "Rome", "Paris")
]
COMPLETIONS = [" is the correct answer.", " is not the correct answer.", " is not the correct answer.", " is not the correct answer."]
FAST = LoraSettings(learning_rate=5e-3, epochs=3, batch_size=2, rank=4, alpha=8, seed=0)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    lm = build_tiny_lm("llama", seed=1)
    path = tmp_path_factory.mktemp("tiny-llama")
    lm.model.save_pretrained(path)
    lm.tokenizer.save_pretrained(path)
    return path


def _spec(path, **extra) -> ModelSpec:
    return ModelSpec(name=str(path), device="cpu", dtype="float32", **extra)


def _completion_loss(model, tokenizer) -> float:
    """Mean cross-entropy of the completions given their prompts (the quantity SFT lowers)."""
    features = sft_features(tokenizer, CONVERSATIONS, COMPLETIONS)
    losses = []
    with torch.no_grad():
        for f in features:
            out = model(input_ids=torch.tensor([f["input_ids"]]), labels=torch.tensor([f["labels"]]))
            losses.append(out.loss.item())
    return sum(losses) / len(losses)


def test_prompt_tokens_carry_no_loss(tiny_lm):
    tok = tiny_lm.tokenizer
    prompt = continuation_prompt(tok, CONVERSATIONS[1])
    features = completion_features(tok, prompt, COMPLETIONS[1])
    prompt_len = len(tok(prompt, add_special_tokens=False)["input_ids"])
    assert features["labels"][:prompt_len] == [IGNORE_INDEX] * prompt_len
    assert features["labels"][prompt_len:] == tok(COMPLETIONS[1], add_special_tokens=False)["input_ids"]
    # the model's loss is the mean over completion tokens only, whatever the prompt's logits are
    ids, labels = torch.tensor([features["input_ids"]]), torch.tensor([features["labels"]])
    with torch.no_grad():
        out = tiny_lm.model(input_ids=ids, labels=labels)
    logits = out.logits[0, prompt_len - 1 : -1]
    manual = torch.nn.functional.cross_entropy(logits, ids[0, prompt_len:])
    assert out.loss.item() == pytest.approx(manual.item(), rel=1e-5)


def test_completion_ends_the_turn(tiny_lm):
    features = sft_features(tiny_lm.tokenizer, CONVERSATIONS[:1], COMPLETIONS[:1])[0]
    assert features["labels"][-1] == tiny_lm.tokenizer.eos_token_id


def test_mismatched_inputs_and_empty_data_are_errors(tiny_lm, tiny_model_dir):
    with pytest.raises(ValueError, match="2 conversations but 1 completions"):
        sft_features(tiny_lm.tokenizer, CONVERSATIONS[:2], COMPLETIONS[:1])
    with pytest.raises(ValueError, match="continuation train set is empty"):
        fine_tune_lora(_spec(tiny_model_dir), [], [], FAST)
    with pytest.raises(ValueError, match="Unknown key.*'sft.training'.*'lr'"):
        LoraSettings.from_params({"lr": 1e-4})


@pytest.fixture(scope="module")
def trained(tiny_model_dir, tmp_path_factory):
    resume = tmp_path_factory.mktemp("resume")
    return fine_tune_lora(_spec(tiny_model_dir), CONVERSATIONS, COMPLETIONS, FAST, resume_dir=str(resume), show_progress=False), resume


def test_training_lowers_the_completion_loss(trained, tiny_model_dir):
    result, resume = trained
    base = load_language_model(_spec(tiny_model_dir))
    before = _completion_loss(base.model, base.tokenizer)
    after = _completion_loss(result.adapter, result.tokenizer)
    assert after < before - 0.1
    steps = [entry["step"] for entry in result.log_history]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) == 6  # 4 examples / batch 2 x 3 epochs
    assert result.log_history[-1]["loss"] < result.log_history[0]["loss"]
    assert not any(resume.iterdir())  # finished: checkpoints removed


def test_lora_wraps_only_adapters(trained):
    result, _ = trained
    trainable = [n for n, p in result.adapter.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert any("mlp" in n for n in trainable) and any("self_attn" in n for n in trainable)  # all linear layers


def test_same_seed_gives_identical_adapters(trained, tiny_model_dir, tmp_path):
    result, _ = trained
    again = fine_tune_lora(_spec(tiny_model_dir), CONVERSATIONS, COMPLETIONS, FAST, resume_dir=str(tmp_path), show_progress=False)
    first = {n: p for n, p in result.adapter.named_parameters() if "lora_" in n}
    second = {n: p for n, p in again.adapter.named_parameters() if "lora_" in n}
    assert first.keys() == second.keys()
    assert all(torch.equal(first[n], second[n]) for n in first)


def test_adapter_round_trip_gives_identical_outputs(trained, tiny_model_dir, tmp_path):
    result, _ = trained
    dataset = ModelDirectoryDataset(filepath=str(tmp_path / "finetuned"))
    dataset.save({"adapter": [result.adapter, result.tokenizer]})
    reloaded = load_language_model(_spec(tiny_model_dir, adapter=str(tmp_path / "finetuned" / "adapter")))
    prompts = [continuation_prompt(reloaded.tokenizer, c) for c in CONVERSATIONS]
    batch = reloaded.tokenizer(prompts[0], return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        expected = result.adapter(**batch).logits
        actual = reloaded.model(**batch).logits
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4)  # merged weights vs adapter on top
    in_memory = LanguageModel(model=result.adapter, tokenizer=result.tokenizer, spec=_spec(tiny_model_dir, adapter="in-memory"))
    settings = GenerationSettings(max_new_tokens=8)
    assert generate_texts(reloaded, prompts, settings) == generate_texts(in_memory, prompts, settings)
    release_models()


def test_merged_export_loads_as_a_plain_model(tiny_model_dir, tmp_path):
    result = fine_tune_lora(_spec(tiny_model_dir), CONVERSATIONS[:2], COMPLETIONS[:2], FAST, resume_dir=None, show_progress=False)
    batch = result.tokenizer(continuation_prompt(result.tokenizer, CONVERSATIONS[0]), return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        expected = result.adapter(**batch).logits
    ModelDirectoryDataset(filepath=str(tmp_path / "out")).save({"adapter": result.adapter, "merged": [result.merged_export(), result.tokenizer]})
    assert (tmp_path / "out" / "adapter" / "adapter_config.json").is_file()
    merged = load_language_model(_spec(tmp_path / "out" / "merged"))
    with torch.no_grad():
        torch.testing.assert_close(merged.model(**batch).logits, expected, rtol=1e-4, atol=1e-4)
    release_models()


def test_a_crashed_run_resumes_from_its_last_checkpoint(trained, tiny_model_dir, tmp_path, monkeypatch):
    from transformers import Trainer

    result, _ = trained
    settings = LoraSettings(**{**FAST.__dict__, "checkpoint_every_steps": 2})
    real_step, calls = Trainer.training_step, []

    def crashing_step(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("simulated crash")
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "training_step", crashing_step)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fine_tune_lora(_spec(tiny_model_dir), CONVERSATIONS, COMPLETIONS, settings, resume_dir=str(tmp_path), show_progress=False)
    (work,) = tmp_path.iterdir()
    assert [p.name for p in work.glob("checkpoint-*")] == ["checkpoint-4"]
    calls.clear()
    resumed = fine_tune_lora(_spec(tiny_model_dir), CONVERSATIONS, COMPLETIONS, settings, resume_dir=str(tmp_path), show_progress=False)
    assert len(calls) == 2  # only steps 5 and 6 ran again
    assert [e["step"] for e in resumed.log_history] == list(range(1, 7))
    first = dict(result.adapter.named_parameters())
    for name, parameter in resumed.adapter.named_parameters():
        if "lora_" in name:
            torch.testing.assert_close(parameter, first[name], rtol=1e-5, atol=1e-6)


def test_gradient_checkpointing_trains_the_same_adapter(trained, tiny_model_dir, tmp_path):
    result, _ = trained
    settings = LoraSettings(**{**FAST.__dict__, "gradient_checkpointing": True})
    again = fine_tune_lora(_spec(tiny_model_dir), CONVERSATIONS, COMPLETIONS, settings, resume_dir=str(tmp_path), show_progress=False)
    first = dict(result.adapter.named_parameters())
    for name, parameter in again.adapter.named_parameters():
        if "lora_" in name:
            torch.testing.assert_close(parameter, first[name], rtol=1e-4, atol=1e-6)
