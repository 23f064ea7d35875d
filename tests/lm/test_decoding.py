"""The bare decode loop: rows that stop early leave the batch without changing the others; nucleus sampling."""

import pytest
import torch

from retraction_kedro.lm import decoding
from retraction_kedro.lm.decoding import NucleusSampler, StopRule, decode, greedy
from retraction_kedro.lm.prefix import batch_inputs

from .test_generation import prompts_for


def run(lm, rows, rule):
    return decode(lm.model, batch_inputs(lm, rows, None, use_cache=True), rule, greedy)


@pytest.mark.parametrize("drop_share", [0.0, 0.5, 2.0])  # leave at once, once half are done, never
def test_rows_that_stop_early_leave_the_batch_and_the_others_continue_unchanged(tiny_lm, drop_share, monkeypatch):
    monkeypatch.setattr(decoding, "DROP_SHARE", drop_share)
    ids = tiny_lm.tokenizer(prompts_for(tiny_lm), add_special_tokens=False)["input_ids"]
    free = run(tiny_lm, ids, StopRule(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long), 12))
    # stop tokens drawn from the free continuations at different steps, so rows finish at different times
    stops = torch.tensor(sorted({free[0][2], free[1][6], free[2][9]}))
    rule = StopRule(stops, torch.tensor([], dtype=torch.long), 12)
    batched = run(tiny_lm, ids, rule)
    single = [run(tiny_lm, [row], rule)[0] for row in ids]
    assert batched == single
    lengths = sorted({len(row) for row in batched})
    assert len(lengths) >= 3  # rows really left the batch at different steps
    for row, whole in zip(batched, free):
        assert row == whole[: len(row)]  # each row is its free continuation, cut after its first stop token
        assert len(row) == 12 or (row[-1] in stops.tolist() and not set(row[:-1]) & set(stops.tolist()))


def test_min_new_tokens_suppresses_end_of_turn_and_stopping(tiny_lm):
    ids = tiny_lm.tokenizer(prompts_for(tiny_lm), add_special_tokens=False)["input_ids"]
    free = run(tiny_lm, ids, StopRule(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long), 8))
    first = torch.tensor(sorted({row[0] for row in free}))
    forced = run(tiny_lm, ids, StopRule(first, first, 8, min_new_tokens=8))
    assert all(len(row) == 8 for row in forced)
    assert not set(row[0] for row in forced) & set(first.tolist())  # the first tokens were suppressed


def reference_nucleus(logits, uniform, temperature, top_p):
    """Sort the whole vocabulary, keep the smallest top set reaching ``top_p``, invert the cumulative mass
    (with ``top_p`` 1, in vocabulary order: no sort is needed)."""
    probs = torch.softmax(logits / temperature, -1)
    values, order = probs.sort(descending=True) if top_p < 1 else (probs, torch.arange(len(probs)))
    cum = values.cumsum(-1)
    count = int(((cum - values) < top_p).sum())
    target = uniform * cum[count - 1]
    return int(order[min(int((cum[:count] <= target).sum()), count - 1)])


def test_nucleus_sampler_matches_a_full_sort_reference():
    generator = torch.Generator().manual_seed(0)
    # peaked rows (the nucleus is a few tokens: the candidate shortcut) and flat rows (wider than the candidates)
    peaked, flat = torch.randn(6, 500, generator=generator) * 6, torch.randn(6, 500, generator=generator) * 0.1
    for logits in (peaked, flat, torch.cat([peaked, flat])):
        for temperature, top_p in ((1.0, 0.9), (0.7, 0.5), (1.3, 1.0)):
            sampler = NucleusSampler(list(range(len(logits))), 20, temperature, top_p)
            for step in range(20):
                uniforms = sampler.uniforms[:, step].tolist()
                expected = [reference_nucleus(row, u, temperature, top_p) for row, u in zip(logits, uniforms)]
                assert sampler(logits, step).tolist() == expected


def test_nucleus_sampler_draws_only_from_the_nucleus_in_proportion():
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.15, 0.1]]))
    sampler = NucleusSampler([7], 4000, temperature=1.0, top_p=0.7)  # the nucleus is {0, 1}: 0.5 < 0.7 <= 0.75
    drawn = torch.cat([sampler(logits, step) for step in range(4000)])
    share = (drawn == 0).float().mean().item()
    assert set(drawn.tolist()) == {0, 1}
    assert abs(share - 2 / 3) < 0.03  # 0.5 / 0.75; 4000 draws: sd 0.0075


def test_dropping_rows_keeps_each_rows_own_uniforms():
    sampler = NucleusSampler([1, 2, 3], 5, 1.0, 1.0)
    third = sampler.uniforms[2].clone()
    sampler.keep(torch.tensor([2]))
    assert torch.equal(sampler.uniforms[0], third)
