"""Training of per-layer linear probes.

The paper trains one probe per layer (no bias, sigmoid, BCE, AdamW, batch 64) in a
separate script per layer. Here the weights of every layer form one ``[layers, hidden]``
tensor and a minibatch updates all layers at once (one gather, two batched matrix-vector
products, the gradient and AdamW's update written out), so training all layers costs about
as much as one Python loop over the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .evaluation import binary_scores


@dataclass(frozen=True)
class ProbeSchedule:
    """Optimiser settings for the layers from ``from_layer`` (a fraction of depth) upwards."""

    from_layer: float
    lr: float
    weight_decay: float
    epochs: int


def _balanced_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per layer, ``binary_scores``' balanced accuracy of ``logits > 0``: the mean accuracy over the classes
    present in ``labels`` (NaN with no labels). logits [L, N], labels [N]."""
    return binary_scores((logits > 0).T, labels)["balanced_accuracy"]


def _centered(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``features - mean``, mean and std (unbiased, clamped at 1e-6) over the first dimension.

    Two passes (the mean, then the squared deviations, squared a block of rows at a time to stay in
    cache): ``Tensor.std``'s Welford reduction gives the same values to ~1e-7 relative but runs
    6x slower on ``[N, L, H]``.
    """
    n = features.shape[0]
    mean = features.mean(0)
    centered = features - mean
    block = 64
    squares = torch.empty(min(block, n), *features.shape[1:])
    sum_of_squares = torch.zeros(features.shape[1:])
    for start in range(0, n, block):
        rows = centered[start : start + block]
        sum_of_squares += torch.mul(rows, rows, out=squares[: rows.shape[0]]).sum(0)
    std = (sum_of_squares / (n - 1)).sqrt_().clamp_(min=1e-6)
    return centered, mean, std


def standardizer(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per layer and dimension mean/std of ``[N, L, H]`` training features (outlier dimensions reach 1e4)."""
    _, mean, std = _centered(features.float())
    return mean, std


class _LayerwiseAdamW:
    """``torch.optim.AdamW`` (default betas/eps, decoupled weight decay) over ``[L, H]`` weights with
    a learning rate and weight decay per layer (``[L, 1]`` double tensors, as torch.optim's Python
    floats), op for op: the same float32 results as one AdamW parameter group per layer."""

    beta1, beta2, eps = 0.9, 0.999, 1e-8

    def __init__(self, weight: torch.Tensor):
        self.weight, self.step_count = weight, 0
        self.exp_avg, self.exp_avg_sq = torch.zeros_like(weight), torch.zeros_like(weight)
        self.denom, self.update = torch.empty_like(weight), torch.empty_like(weight)

    def step(self, grad: torch.Tensor, lr: torch.Tensor, weight_decay: torch.Tensor) -> None:
        """One update with ``grad [L, H]``; a layer with lr 0 keeps its weights."""
        self.step_count += 1
        step = self.step_count
        self.weight.mul_((1 - lr * weight_decay).float())
        self.exp_avg.lerp_(grad, 1 - self.beta1)
        self.exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
        torch.sqrt(self.exp_avg_sq, out=self.denom).div_((1 - self.beta2**step) ** 0.5).add_(self.eps)
        # AdamW's addcdiv_(exp_avg, denom, value=-lr / bias_correction1), which computes (value * exp_avg) / denom
        torch.mul(self.exp_avg, (lr / -(1 - self.beta1**step)).float(), out=self.update).div_(self.denom)
        self.weight.add_(self.update)


def train_probes(
    features: torch.Tensor,
    labels: torch.Tensor,
    val_features: torch.Tensor,
    val_labels: torch.Tensor,
    schedules: list[ProbeSchedule],
    batch_size: int = 64,
    seed: int = 0,
    standardize: bool = True,
) -> dict[str, torch.Tensor]:
    """Train one probe per layer on ``features [N, L, H]``; keep, per layer, the epoch with the best
    balanced accuracy on ``val_features``. Returns weight [L, H], mean/std [L, H], best_epoch,
    val_balanced_accuracy [L], and the per-epoch training loss [epochs, L].

    Per layer this is ``nn.Linear(hidden, 1, bias=False)`` from zero, mean BCE on the sigmoid,
    ``torch.optim.AdamW`` (default betas/eps) with the layer's schedule, the same minibatches for
    every layer; a layer stops updating after its schedule's epochs. The gradient and the AdamW
    step are written out instead of going through autograd and ``torch.optim``: for these sizes
    the framework overhead costs more than the arithmetic.
    """
    if features.ndim != 3 or features.shape[0] != labels.shape[0]:
        raise ValueError(f"features must be [examples, layers, hidden] matching labels; got {tuple(features.shape)} and {tuple(labels.shape)}")
    if val_labels.numel() == 0:
        raise ValueError("the validation split is empty: the epoch of each layer is chosen on it")
    if val_features.shape[1:] != features.shape[1:]:
        raise ValueError(f"validation features {tuple(val_features.shape)} do not match training features {tuple(features.shape)}")
    n, layers, hidden = features.shape
    # Kept [N, L, H]: a minibatch is B contiguous [L, H] blocks, and its per-layer [B, H] matrices are
    # strided views that bmm reads in place.
    x = features.float()
    if standardize:
        x, mean, std = _centered(x)
        x.div_(std)
    else:
        mean, std = torch.zeros(layers, hidden), torch.ones(layers, hidden)
    xv = (val_features.float() - mean).div_(std)
    y = labels.float()
    ordered = sorted(schedules, key=lambda s: s.from_layer)
    group_of_layer = torch.zeros(layers, dtype=torch.long)
    for k, schedule in enumerate(ordered):
        group_of_layer[min(layers - 1, int(round(schedule.from_layer * layers))) :] = k
    per_layer = [ordered[g] for g in group_of_layer.tolist()]
    # [L, 1], in double like torch.optim's Python-float hyperparameters (rounded to float32 when applied)
    lr = torch.tensor([s.lr for s in per_layer], dtype=torch.float64).unsqueeze(1)
    weight_decay = torch.tensor([s.weight_decay for s in per_layer], dtype=torch.float64).unsqueeze(1)
    epochs_of_layer = torch.tensor([s.epochs for s in per_layer])
    max_epochs = max(s.epochs for s in ordered)
    weight = torch.zeros(layers, hidden)  # zero init, as logistic regression
    optimizer = _LayerwiseAdamW(weight)
    grad = torch.empty(layers, 1, hidden)
    batch_x = torch.empty(min(batch_size, n), layers, hidden)
    logits = torch.empty(layers, n)  # the epoch's training logits, in minibatch order
    best_score = torch.full((layers,), -1.0)
    best_weight = torch.zeros(layers, hidden)
    best_epoch = torch.zeros(layers, dtype=torch.long)
    losses = torch.zeros(max_epochs, layers)
    generator = torch.Generator().manual_seed(seed)
    row = weight.unsqueeze(1)  # [L, 1, H] view
    for epoch in range(max_epochs):
        order = torch.randperm(n, generator=generator)
        y_order = y[order]
        # Past its epoch budget a layer keeps its weights: lr 0 and no decay (as zeroing its group's lr/wd).
        live = epoch < epochs_of_layer
        lr_epoch = torch.where(live.unsqueeze(1), lr, 0.0)
        for start in range(0, n, batch_size):
            batch = order[start : start + batch_size]
            size = batch.numel()
            xb = torch.index_select(x, 0, batch, out=batch_x[:size])  # [B, L, H]
            z = torch.bmm(row, xb.permute(1, 2, 0)).squeeze(1)  # [L, B]
            logits[:, start : start + size] = z
            # d mean-BCE / d logits = (sigmoid(z) - y) / B; layers are independent
            residual = torch.sigmoid(z).sub_(y_order[start : start + size]).div_(size)
            torch.bmm(residual.unsqueeze(1), xb.transpose(0, 1), out=grad)
            optimizer.step(grad.squeeze(1), lr_epoch, weight_decay)
        losses[epoch] = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, y_order.expand_as(logits), reduction="none"
        ).sum(1) / n
        score = _balanced_accuracy(torch.bmm(row, xv.permute(1, 2, 0)).squeeze(1), val_labels)
        improved = (score > best_score) & live
        best_score = torch.where(improved, score, best_score)
        best_weight[improved] = weight[improved]
        best_epoch[improved] = epoch
    return {
        "weight": best_weight,
        "mean": mean,
        "std": std,
        "best_epoch": best_epoch,
        "val_balanced_accuracy": best_score,
        "train_loss": losses,
    }


def predict(probes: dict[str, torch.Tensor], features: torch.Tensor) -> torch.Tensor:
    """Probability of 'correct' per example and layer, ``[N, L]``."""
    if features.shape[1:] != probes["weight"].shape:
        raise ValueError(
            f"features {tuple(features.shape)} do not match probes for {tuple(probes['weight'].shape)} [layers, hidden]"
        )
    x = (features.float() - probes["mean"]) / probes["std"]
    return torch.sigmoid(torch.einsum("nlh,lh->nl", x, probes["weight"]))


def fit_sklearn_probes(
    features: torch.Tensor,
    labels: torch.Tensor,
    c: float | list[float] = 1.0,
    seed: int = 0,
    val_features: torch.Tensor | None = None,
    val_labels: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The cross-check: scikit-learn logistic regression (no intercept) per layer, same standardization.

    With several values of ``c`` (inverse regularization) and a validation split, each layer keeps
    the ``c`` with the lowest validation log-loss - the counterpart of the batched trainer's epoch
    selection. Log-loss rather than balanced accuracy: on a few hundred validation examples
    accuracy plateaus and ties across ``c`` and the choice falls on an arbitrary, often barely
    regularized one; a proper scoring rule ranks them smoothly. The Newton-Cholesky solver suits a few
    hundred dimensions and a few thousand examples: on the embedded truthfulness features it reached a lower
    objective than lbfgs on every layer and C tried, 4x faster.
    """
    from sklearn.linear_model import LogisticRegression

    grid = [c] if isinstance(c, (int, float)) else list(c)
    if len(grid) > 1 and val_features is None:
        raise ValueError("choosing among several sklearn_c values needs a validation split")
    x = features.float()
    mean, std = standardizer(x)
    x = ((x - mean) / std).numpy()
    xv = ((val_features.float() - mean) / std).numpy() if val_features is not None else None
    y = labels.numpy().astype(int)
    weights, chosen = [], []
    for layer in range(x.shape[1]):
        best = None
        for value in grid:
            model = LogisticRegression(C=value, fit_intercept=False, solver="newton-cholesky", max_iter=200, random_state=seed)
            coef = model.fit(x[:, layer], y).coef_[0]
            score = 0.0
            if xv is not None and len(grid) > 1:
                logits = torch.from_numpy(xv[:, layer] @ coef).float()
                score = -torch.nn.functional.binary_cross_entropy_with_logits(logits, val_labels.float()).item()
            if best is None or score > best[0]:
                best = (score, coef, value)
        weights.append(best[1])
        chosen.append(best[2])
    return {
        "weight": torch.from_numpy(np.stack(weights)).float(),
        "mean": mean,
        "std": std,
        "sklearn_c": torch.tensor(chosen, dtype=torch.float),
    }
