import pytest
import torch
from kedro.io.core import DatasetError, Version

from retraction_kedro.datasets import ModelDirectoryDataset
from retraction_kedro.lm import ModelSpec, load_language_model


def test_a_saved_model_loads_back_through_the_model_package(tiny_lm, tmp_path):
    dataset = ModelDirectoryDataset(str(tmp_path / "model"), version=Version(None, "2026-01-01T00.00.00.000Z"))
    dataset.save([tiny_lm.model, tiny_lm.tokenizer])
    path = ModelDirectoryDataset(str(tmp_path / "model"), version=Version(None, None)).load()
    assert path.endswith("2026-01-01T00.00.00.000Z/model")
    lm = load_language_model(ModelSpec(name=path, device="cpu"))
    ids = torch.tensor([[1, 5, 9]])
    assert torch.allclose(lm.model(ids).logits, tiny_lm.model(ids).logits)
    assert not [p for p in (tmp_path / "model").rglob(".model-*")]  # no staging folder left behind


def test_refuses_objects_that_cannot_be_saved(tmp_path):
    with pytest.raises(DatasetError, match="has no save_pretrained"):
        ModelDirectoryDataset(str(tmp_path / "m")).save(object())
    assert not (tmp_path / "m").exists()
    with pytest.raises(DatasetError, match="does not exist"):
        ModelDirectoryDataset(str(tmp_path / "m")).load()
