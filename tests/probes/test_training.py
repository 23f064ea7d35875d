import pytest
import torch

from retraction_kedro.probes import ProbeSchedule, binary_scores, fit_sklearn_probes, group_accuracy, predict, train_probes

SCHEDULES = [ProbeSchedule(0.0, 1e-3, 1e-3, 20), ProbeSchedule(0.5, 5e-4, 1e-2, 12)]


def planted(n=500, layers=6, hidden=24, layer=3, seed=0):
    """Random activations where only ``layer`` carries the label along one direction (plus an outlier dimension)."""
    g = torch.Generator().manual_seed(seed)
    labels = (torch.rand(n, generator=g) > 0.5).long()
    x = torch.randn(n, layers, hidden, generator=g) * 3
    direction = torch.randn(hidden, generator=g)
    x[:, layer] += (labels.float() * 2 - 1)[:, None] * direction / direction.norm() * 3
    x[:, :, 0] *= 1000
    return x, labels


def test_the_probe_finds_the_layer_with_the_planted_direction():
    x, y = planted()
    probes = train_probes(x[:350], y[:350], x[350:], y[350:], SCHEDULES, seed=0)
    accuracy = binary_scores(predict(probes, x[350:]) > 0.5, y[350:])["accuracy"]
    assert int(accuracy.argmax()) == 3
    assert accuracy[3] > 0.8 and all(accuracy[i] < 0.7 for i in range(6) if i != 3)


def test_identical_seeds_give_identical_weights_and_other_seeds_do_not():
    x, y = planted()
    a = train_probes(x[:350], y[:350], x[350:], y[350:], SCHEDULES, seed=1)
    b = train_probes(x[:350], y[:350], x[350:], y[350:], SCHEDULES, seed=1)
    c = train_probes(x[:350], y[:350], x[350:], y[350:], SCHEDULES, seed=2)
    assert torch.equal(a["weight"], b["weight"])
    assert not torch.equal(a["weight"], c["weight"])


def test_upper_layers_follow_their_own_schedule():
    x, y = planted()
    probes = train_probes(x[:350], y[:350], x[350:], y[350:], SCHEDULES, seed=0)
    assert (probes["best_epoch"][3:] < 12).all()  # the upper half stops after 12 epochs
    assert probes["train_loss"].shape == (20, 6)


def test_batched_and_sklearn_agree_on_the_planted_layer():
    x, y = planted()
    batched = train_probes(x[:350], y[:350], x[350:], y[350:], SCHEDULES, seed=0)
    sk = fit_sklearn_probes(x[:350], y[:350])
    a = binary_scores(predict(batched, x[350:]) > 0.5, y[350:])["accuracy"]
    b = binary_scores(predict(sk, x[350:]) > 0.5, y[350:])["accuracy"]
    assert abs(a[3] - b[3]) < 0.05


def test_shape_mismatches_fail_clearly():
    x, y = planted()
    with pytest.raises(ValueError, match="matching labels"):
        train_probes(x, y[:10], x, y, SCHEDULES)
    probes = train_probes(x[:100], y[:100], x[100:150], y[100:150], SCHEDULES[:1])
    with pytest.raises(ValueError, match=r"do not match probes"):
        predict(probes, x[:, :4])


def test_group_accuracy_by_hand():
    # 4 examples, 1 layer: result T T F F, retracted F T T F, probe believes correct T F F T
    believed = torch.tensor([[True], [False], [False], [True]])
    scores = group_accuracy(believed, torch.tensor([1, 1, 0, 0]), torch.tensor([0, 1, 1, 0]))
    assert scores["retraction_prediction_accuracy"].item() == 1.0  # believed wrong <=> retracted
    assert scores["believed_wrong_precision"].item() == 1.0 and scores["believed_right_precision"].item() == 1.0
    assert scores["accuracy_correct_not_retracted"].item() == 1.0
    assert scores["accuracy_correct_retracted"].item() == 0.0  # believed wrong, but it was correct
    assert scores["accuracy_wrong_retracted"].item() == 1.0
    assert scores["accuracy_wrong_not_retracted"].item() == 0.0
    empty = group_accuracy(torch.tensor([[True]]), torch.tensor([1]), torch.tensor([0]))
    assert empty["accuracy_wrong_retracted"].item() == 0.0  # an empty group is defined, not NaN
