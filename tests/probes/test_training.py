import pytest
import torch

from retraction_kedro.probes import ProbeSchedule, binary_scores, fit_sklearn_probes, predict, train_probes

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


def per_layer_reference(x, y, xv, yv, schedules, batch_size, seed, standardize):
    """The paper's recipe with autograd and torch.optim.AdamW, one layer at a time, on the batched
    trainer's minibatch order (one randperm per epoch from the seeded generator)."""
    n, layers, hidden = x.shape
    mean, std = torch.zeros(layers, hidden), torch.ones(layers, hidden)
    if standardize:  # Tensor.std's Welford reduction, independent of the trainer's two-pass std
        mean, std = x.mean(0), x.std(0).clamp(min=1e-6)
    generator = torch.Generator().manual_seed(seed)
    ordered = sorted(schedules, key=lambda s: s.from_layer)
    max_epochs = max(s.epochs for s in ordered)
    orders = [torch.randperm(n, generator=generator) for _ in range(max_epochs)]
    weight, best_epoch = torch.zeros(layers, hidden), torch.zeros(layers, dtype=torch.long)
    losses = torch.zeros(max_epochs, layers)
    for layer in range(layers):
        schedule = [s for s in ordered if layer >= min(layers - 1, round(s.from_layer * layers))][-1]
        features, val = (x[:, layer] - mean[layer]) / std[layer], (xv[:, layer] - mean[layer]) / std[layer]
        probe = torch.nn.Linear(hidden, 1, bias=False)
        torch.nn.init.zeros_(probe.weight)
        optimizer = torch.optim.AdamW(probe.parameters(), lr=schedule.lr, weight_decay=schedule.weight_decay)
        best = -1.0
        for epoch in range(max_epochs):
            total = 0.0
            for start in range(0, n, batch_size):
                batch = orders[epoch][start : start + batch_size]
                logits = probe(features[batch]).squeeze(1)
                loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y[batch].float())
                total += loss.item() * len(batch)
                if epoch < schedule.epochs:  # past its budget a layer is only evaluated
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
            losses[epoch, layer] = total / n
            with torch.no_grad():
                score = binary_scores(probe(val) > 0, yv)["balanced_accuracy"].item()
            if epoch < schedule.epochs and score > best:
                best, weight[layer], best_epoch[layer] = score, probe.weight.detach()[0], epoch
    return {"weight": weight, "mean": mean, "std": std, "best_epoch": best_epoch, "train_loss": losses}


@pytest.mark.parametrize("standardize", [True, False])
def test_analytic_adamw_matches_the_autograd_per_layer_reference(standardize):
    # lower layers stop first (5 epochs, upper 8), a partial last minibatch (300 = 9 * 32 + 12)
    schedules = [ProbeSchedule(0.0, 1e-2, 1e-2, 5), ProbeSchedule(0.5, 3e-3, 1e-1, 8)]
    x, y = planted(n=400, layers=4, hidden=16, layer=2, seed=3)
    args = (x[:300], y[:300], x[300:], y[300:], schedules, 32, 7)
    ours, reference = train_probes(*args, standardize=standardize), per_layer_reference(*args, standardize=standardize)
    assert torch.allclose(ours["std"], reference["std"], rtol=1e-6)
    assert torch.equal(ours["best_epoch"], reference["best_epoch"])
    assert ours["weight"].abs().max() > 1e-2  # the probes moved
    assert torch.allclose(ours["weight"], reference["weight"], atol=1e-5, rtol=0)
    assert torch.allclose(ours["train_loss"], reference["train_loss"], atol=1e-5, rtol=1e-5)


def test_layerwise_adamw_is_torch_adamw_bit_for_bit():
    from retraction_kedro.probes.training import _LayerwiseAdamW

    g = torch.Generator().manual_seed(0)
    start = torch.randn(4, 50, generator=g)
    lr = torch.tensor([[1e-3], [1e-3], [5e-4], [5e-4]], dtype=torch.float64)
    weight_decay = torch.tensor([[1e-3], [1e-3], [1e-2], [1e-2]], dtype=torch.float64)
    lower, upper = start[:2].clone().requires_grad_(), start[2:].clone().requires_grad_()
    groups = [
        {"params": [lower], "lr": 1e-3, "weight_decay": 1e-3},
        {"params": [upper], "lr": 5e-4, "weight_decay": 1e-2},
    ]
    reference = torch.optim.AdamW(groups)
    ours = _LayerwiseAdamW(start.clone())
    for step in range(60):
        if step == 40:  # the upper group's budget ends: its lr and weight decay go to 0
            reference.param_groups[1]["lr"] = reference.param_groups[1]["weight_decay"] = 0.0
            lr[2:] = 0.0
        grad = torch.randn(4, 50, generator=g) * 10 ** torch.randn(4, 1, generator=g)
        lower.grad, upper.grad = grad[:2].clone(), grad[2:].clone()
        reference.step()
        ours.step(grad, lr, weight_decay)
    assert torch.equal(ours.weight, torch.cat([lower, upper]).detach())
