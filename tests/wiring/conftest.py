"""A scratch project whose testbed is a question file of its own, run on a tiny model trained in seconds.

The model is a 4-layer Llama with a 64-wide residual stream, trained on a made-up world (countries of
Atlantis and its neighbours, their cities and capitals) until it answers the fixture's questions: some
with a city of the right country, some with a city of another, and it names each city's country
when asked. So construction keeps both right answers it confirms and wrong answers it contradicts,
and every later stage has real material, in seconds.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml

from retraction_kedro.lm.tiny import CHATML
from tests.conftest import make_project, torch_threads

COUNTRIES = {
    "Atlantis": ["Poseidonia", "Coralton"], "Lemuria": ["Mu Harbor", "Kumari"], "Hyperborea": ["Thule", "Boreas"],
    "Avalon": ["Glaston", "Apple Bay"], "Lyonesse": ["Lethowsow", "Scilly Port"], "Agartha": ["Shamballa", "Deepwell"],
    "Zerzura": ["Oasis Town", "White City"], "Cibola": ["Gold Mesa", "Hawikuh"],
}  # fmt: skip
TRAIN, TEST = ["Atlantis", "Lemuria", "Hyperborea", "Avalon"], ["Lyonesse", "Agartha", "Zerzura", "Cibola"]
# The answer the model learns per question: its own city, or (in the same split) a city of another country.
TAUGHT = {"Atlantis": "Poseidonia", "Lemuria": "Poseidonia", "Hyperborea": "Thule", "Avalon": "Thule",
          "Lyonesse": "Lethowsow", "Agartha": "Lethowsow", "Zerzura": "Oasis Town", "Cibola": "Oasis Town"}  # fmt: skip
SYSTEM = "You answer questions directly. Start your reply with the name that answers the question."
REGISTRY_ENTRY = {
    "study": "fixture", "truthfulness": "fixture_truthfulness",
    "source": {"files": {"train": "data/01_raw/atlantis/city_train.jsonl", "test": "data/01_raw/atlantis/city_test.jsonl"}},
    "constraint_field": "country", "reject_constraint_values": True, "min_name_words": 1, "max_name_words": 3,
    "verification": {"system": "Reply with the name only.", "template": "Which country is {name} in?", "response_field": "country_response", "shots": 1},
}  # fmt: skip


def city_question(country: str) -> dict:
    question = f"Name a city in {country}."
    return {"country": country, "question": question, "answers": COUNTRIES[country],
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]}  # fmt: skip


def truthfulness_rows(countries: list[str], seed: int) -> list[dict]:
    rng, rows = random.Random(seed), []
    for country in countries:
        question = f"Which country is {COUNTRIES[country][1]} in?"
        wrong = rng.choice([c for c in countries if c != country])
        for answer, label in ((country, 1), (wrong, 0)):
            rows.append({"question": question, "answer": f"{answer}.", "label": label,
                         "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]})  # fmt: skip
    return rows


def conversations() -> list[list[dict]]:
    """What the tiny model is trained on: its answers to the fixture's questions, and the country of every city."""
    taught = []
    for country, answer in TAUGHT.items():
        taught.append([*city_question(country)["messages"], {"role": "assistant", "content": answer}])
    for country, cities in COUNTRIES.items():
        for city in cities:
            taught.append([{"role": "system", "content": "Reply with the name only."},
                           {"role": "user", "content": f"Which country is {city} in?"}, {"role": "assistant", "content": country}])  # fmt: skip
    return taught


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def train_tiny_chat_model(path: Path, vocabulary: list[str], taught: list[list[dict]], vocab_size: int = 600, steps: int = 300) -> str:
    """A 4-layer Llama (64 wide) with a BPE tokenizer trained on ``vocabulary``, fitted to the ``taught``
    conversations on one thread, saved with its tokenizer under ``path`` (a directory `model.name` can name)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<pad>", "<|im_start|>", "<|im_end|>"]
    tok.train_from_iterator(vocabulary * 8, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<|im_end|>", bos_token="<|im_start|>")
    tokenizer.chat_template = CHATML
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id, tie_word_embeddings=False)  # fmt: skip
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    texts = [tokenizer.apply_chat_template(c, tokenize=False) for c in taught]
    batch = tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    with torch_threads(1):
        for _ in range(steps):
            loss = model(**batch, labels=labels).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    assert loss.item() < 0.5, f"the tiny model did not learn its fixture (loss {loss.item():.2f})"
    model.eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_chat_model(tmp_path_factory) -> str:
    """A directory that `model.name` can point at: the tiny model after ~2 s of training, with its tokenizer."""
    vocabulary = [f"{c} {' '.join(cities)} is a city in {c}." for c, cities in COUNTRIES.items()] + [SYSTEM, "Which country is it in? Reply with the name only."]
    return train_tiny_chat_model(tmp_path_factory.mktemp("tiny_chat_model"), vocabulary, conversations())


# Small settings so every stage runs in seconds on the tiny model.
FAST = {
    "runtime": {"resume_dir": None, "show_progress": False},
    "construction": {"sample_seeds": [0, 1, 2], "answer_max_new_tokens": 6, "verification_max_new_tokens": 4, "val_fraction": 0.0},
    "activations": {"max_new_tokens": 8},
    "probing": {"schedules": [{"from_layer": 0.0, "lr": 1.0e-3, "weight_decay": 1.0e-3, "epochs": 5}], "sklearn_c": [1.0]},
    "interventions": {"max_new_tokens": 8,
                      "sweep": {"bands": [{"from_fraction": 0.25, "to_fraction": 0.75}], "alphas": [0.5], "scale": "relative",
                                "directions": ["mean_difference", "probe"],
                                "settled_p": 1.0e-9}},  # no fixture-sized sweep gets there: the second direction always runs
    "sft": {"training": {"epochs": 1, "batch_size": 4, "checkpoint_every_steps": 50}},
    "evidence": {"resamples": 200},
}  # fmt: skip


def fixture_registry() -> dict:
    return {
        "studies": {"fixture": {"default": True, "finetuned_interventions": True}},
        "truthfulness_sets": {"fixture_truthfulness": {"source": {"files": {
            "train": "data/01_raw/atlantis/truthfulness_train.jsonl", "test": "data/01_raw/atlantis/truthfulness_test.jsonl"}}}},
        "testbeds": {"atlantis_city": REGISTRY_ENTRY},
    }  # fmt: skip


@pytest.fixture
def fixture_project(tmp_path, tiny_chat_model, monkeypatch) -> tuple[Path, dict]:
    """A copy of the project whose registry holds one testbed read from files, and the parameters
    that point it at the tiny model; a user does the same with a question file and a registry entry."""
    project = make_project(tmp_path)
    (project / "conf/base/parameters_testbeds.yml").write_text(yaml.safe_dump(fixture_registry(), sort_keys=False))
    raw = project / "data/01_raw/atlantis"
    write_jsonl(raw / "city_train.jsonl", [city_question(c) for c in TRAIN])
    write_jsonl(raw / "city_test.jsonl", [city_question(c) for c in TEST])
    write_jsonl(raw / "truthfulness_train.jsonl", truthfulness_rows(TRAIN, 0) * 3)
    write_jsonl(raw / "truthfulness_test.jsonl", truthfulness_rows(TEST, 1) * 3)
    monkeypatch.chdir(project)
    return project, {**FAST, "model": {"name": tiny_chat_model, "batch_size": 4}}
