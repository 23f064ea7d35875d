"""The decode loop: rows that stop early leave the batch and waiting prompts take their places, without changing
any row's tokens; nucleus sampling."""

import pytest
import torch

from retraction_kedro.lm import decoding
from retraction_kedro.lm.decoding import NucleusSampler, StopRule, decode, decode_stream, greedy
from retraction_kedro.lm.prefix import batch_inputs, plan_prefix, suffix_tokens_needed

from .test_generation import many_prompts_for, prompts_for


def run(lm, rows, rule):
    return decode(lm.model, batch_inputs(lm, rows, None, use_cache=True), rule, greedy)


@pytest.mark.parametrize("drop_share", [0.0, 0.5, 2.0])  # leave at once, once half are done, never
def test_rows_that_stop_early_leave_the_batch_and_the_others_continue_unchanged(tiny_lm, drop_share, monkeypatch):
    monkeypatch.setattr(decoding, "REFILL_SHARE", drop_share)
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
                rows, steps = torch.arange(len(logits)), torch.full((len(logits),), step)
                assert sampler(logits, rows, steps).tolist() == expected


def test_nucleus_sampler_draws_only_from_the_nucleus_in_proportion():
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.15, 0.1]]))
    sampler = NucleusSampler([7], 4000, temperature=1.0, top_p=0.7)  # the nucleus is {0, 1}: 0.5 < 0.7 <= 0.75
    drawn = torch.cat([sampler(logits, torch.tensor([0]), torch.tensor([step])) for step in range(4000)])
    share = (drawn == 0).float().mean().item()
    assert set(drawn.tolist()) == {0, 1}
    assert abs(share - 2 / 3) < 0.03  # 0.5 / 0.75; 4000 draws: sd 0.0075


def test_each_row_draws_its_own_uniform_at_its_own_step():
    """Rows of one batch are at different steps under continuous batching: row 2's fourth token uses its own
    fourth uniform, whichever slot it sits in."""
    sampler = NucleusSampler([1, 2, 3], 5, 1.0, 1.0)
    logits = torch.zeros(2, 1000)  # uniform over the vocabulary: the draw is the uniform's position in it
    drawn = sampler(logits, torch.tensor([2, 0]), torch.tensor([3, 0]))
    expected = [int(sampler.uniforms[2, 3] * 1000), int(sampler.uniforms[0, 0] * 1000)]
    assert drawn.tolist() == expected


def _stops_at_different_steps(lm, ids, steps=12):
    """Stop tokens drawn from the rows' free continuations, so that rows end at different steps."""
    none = torch.tensor([], dtype=torch.long)
    free = run(lm, ids, StopRule(none, none, steps))
    stops = torch.tensor(sorted({free[0][2], free[1][6], free[2][9], free[3][4]}))
    return StopRule(stops, none, steps)


@pytest.mark.parametrize("batch_size", [1, 3, 8, 16])
@pytest.mark.parametrize("sampled", [False, True])
def test_continuous_batching_gives_each_row_what_it_gets_alone(tiny_lm, batch_size, sampled):
    """Finished rows' places are taken by waiting prompts (their prompt pass joins the running cache on top of
    the shared prefix); every row's tokens are those of its own run, greedy and sampled. At batch 16 finished
    rows (some at the token limit) wait in the batch until enough have finished to be worth a copy."""
    prompts = many_prompts_for(tiny_lm)[:16]
    ids = tiny_lm.tokenizer(prompts, add_special_tokens=False)["input_ids"]
    rule = _stops_at_different_steps(tiny_lm, ids)
    choose = NucleusSampler(list(range(100, 116)), 12, 1.0, 0.9) if sampled else greedy
    prefix = plan_prefix(tiny_lm, ids, suffix_tokens_needed(), True)
    assert prefix is not None

    def make_batch(rows):
        return batch_inputs(tiny_lm, [ids[row][prefix.length :] for row in rows], prefix, use_cache=True)

    results, groups = {}, []
    decode_stream(tiny_lm.model, range(16), lambda rows: groups.append(rows) or make_batch(rows), rule, choose,
                  batch_size, lambda done: results.update(done))  # fmt: skip
    alone = {}
    for row in range(16):
        decode_stream(tiny_lm.model, [row], make_batch, rule, choose, 1, lambda done: alone.update(done))
    assert results == alone
    assert len({len(tokens) for tokens in results.values()}) >= 3  # rows ended at different steps
    if 1 < batch_size < 16:
        assert len(groups) > -(-16 // batch_size)  # prompts entered while others were running


def test_a_batch_of_finished_rows_and_waiting_prompts_keeps_its_cache_compact(tiny_lm, monkeypatch):
    """Key columns no row of the batch uses are cut off as rows leave: the first column is always some row's, so the
    cache does not grow step after step while prompts come and go."""
    prompts = many_prompts_for(tiny_lm)[:24]
    ids = tiny_lm.tokenizer(prompts, add_special_tokens=False)["input_ids"]
    rule = _stops_at_different_steps(tiny_lm, ids)
    first_column_used = []
    real_step = decoding._step

    def step(model, running, *args):
        first_column_used.append(bool(running.mask[:, 0].any()))
        return real_step(model, running, *args)

    monkeypatch.setattr(decoding, "_step", step)
    decode_stream(tiny_lm.model, range(24), lambda rows: batch_inputs(tiny_lm, [ids[r] for r in rows], None, use_cache=True),
                  rule, greedy, 4, lambda done: None)  # fmt: skip
    assert len(first_column_used) > 20 and all(first_column_used)


def test_sampling_with_finished_rows_left_in_the_batch(tiny_lm):
    """Rows that reached the token limit can stay in the batch for a step (too few to be worth a copy of the cache):
    the sampler still draws only each live row's own uniforms, and the dead ones are ignored."""
    ids = tiny_lm.tokenizer(many_prompts_for(tiny_lm), add_special_tokens=False)["input_ids"]
    rule = _stops_at_different_steps(tiny_lm, ids)
    sampler = NucleusSampler(list(range(len(ids))), 12, 1.0, 0.9)
    results, alone = {}, {}
    decode_stream(tiny_lm.model, range(len(ids)), lambda rows: batch_inputs(tiny_lm, [ids[r] for r in rows], None, use_cache=True),
                  rule, sampler, 16, lambda done: results.update(done))  # fmt: skip
    for row in range(len(ids)):
        decode_stream(tiny_lm.model, [row], lambda rows: batch_inputs(tiny_lm, [ids[r] for r in rows], None, use_cache=True),
                      rule, sampler, 1, lambda done: alone.update(done))  # fmt: skip
    assert results == alone and sum(len(tokens) == 12 for tokens in results.values()) > 1
