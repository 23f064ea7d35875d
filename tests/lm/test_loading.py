import pytest
import torch

from retraction_kedro.lm import EMBEDDED_MODEL_ID, ModelNotFoundError, ModelSpec, load_language_model, model_slug
from retraction_kedro.lm.loading import resolve_model_source


def test_unknown_hub_id_fails_with_one_clear_message(tmp_path):
    spec = ModelSpec(name="no-such-org/no-such-model-xyz", cache_dir=str(tmp_path))
    with pytest.raises(ModelNotFoundError) as error:
        load_language_model(spec)
    message = str(error.value)
    assert "no-such-org/no-such-model-xyz" in message
    for way in ("local directory", "cache", "network"):
        assert way in message
    assert error.value.__cause__ is None and error.value.__suppress_context__  # no stack of hub errors


def test_missing_local_path_fails_clearly(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no such directory"):
        resolve_model_source(ModelSpec(name=str(tmp_path / "absent" / "model")))


def test_local_directory_loads_with_from_pretrained(tiny_lm, tmp_path):
    tiny_lm.model.save_pretrained(tmp_path)
    tiny_lm.tokenizer.save_pretrained(tmp_path)
    lm = load_language_model(ModelSpec(name=str(tmp_path), device="cpu"))
    assert lm.num_layers == tiny_lm.num_layers
    assert lm.tokenizer.padding_side == "left"
    assert lm.model.dtype == torch.float32


def test_spec_validation():
    with pytest.raises(ValueError, match="Unknown key"):
        ModelSpec.from_params({"name": "x", "devcie": "cpu"})
    with pytest.raises(ValueError, match="model.dtype"):
        ModelSpec(dtype="float8").resolved_dtype()
    assert ModelSpec.from_params({"name": "x", "batch_size": 4}).name == "x"
    if not torch.cuda.is_available():
        assert ModelSpec().resolved_device() == "cpu"
        assert ModelSpec().resolved_dtype() == torch.float32


def test_model_slug_keys_artifacts_by_model():
    assert model_slug(EMBEDDED_MODEL_ID) == "huggingfacetb--smollm2-135m-instruct"
    assert model_slug("meta-llama/Llama-3.1-8B-Instruct") != model_slug("Qwen/Qwen2.5-7B-Instruct")


@pytest.mark.embedded
def test_embedded_model_is_cached_as_safetensors(embedded_lm):
    from tests.conftest import MODEL_CACHE

    cached = MODEL_CACHE / model_slug(EMBEDDED_MODEL_ID)
    assert (cached / "config.json").is_file() and (cached / "model.safetensors").is_file()
    assert embedded_lm.num_layers == 30 and embedded_lm.hidden_size == 576
    assert embedded_lm.tokenizer.chat_template


@pytest.mark.embedded
def test_dequantizing_leaves_everything_else_in_the_cache_folder_alone(tmp_path):
    """The first `make run` on a fresh clone lost its artifacts: the cache was the artifacts' own folder, and
    dequantizing replaced it. Other files in the cache folder survive; a folder at the target that this
    project did not write is refused, untouched; an incomplete one it did write is replaced."""
    from retraction_kedro.lm.loading import CACHE_MARKER, materialize_embedded_model

    cache = tmp_path / "cache"
    target = cache / model_slug(EMBEDDED_MODEL_ID)
    spec_file = target / "geo_truthfulness" / "model_spec.json" / "2026-12-04T00.00.00.000Z" / "model_spec.json"
    spec_file.parent.mkdir(parents=True)
    spec_file.write_text("{}")
    (cache / "other-model").mkdir()
    (cache / "other-model" / "weights.bin").write_text("x")
    with pytest.raises(ModelNotFoundError, match="exists but is not a model folder this project wrote"):
        materialize_embedded_model(cache)
    assert spec_file.read_text() == "{}"

    spec_file.parent.parent.parent.rename(cache / "artifacts")  # moved away, as the message says
    (target / CACHE_MARKER).write_text("")  # an interrupted dequantization of ours: replaced
    (target / "config.json").write_text("{}")
    assert materialize_embedded_model(cache) == target
    assert (target / "model.safetensors").is_file() and (target / CACHE_MARKER).is_file()
    assert (cache / "other-model" / "weights.bin").read_text() == "x"
    assert (cache / "artifacts" / "model_spec.json" / "2026-12-04T00.00.00.000Z" / "model_spec.json").is_file()
    assert [p.name for p in cache.iterdir() if p.name.startswith(".")] == []  # no staging folder left behind
