import torch

from retraction_kedro.lm.batching import BatchJournal, fingerprint, plan_batches


def test_plan_batches_groups_by_length_longest_first_and_covers_every_index():
    lengths = [3, 9, 1, 9, 5, 2, 7]
    batches = plan_batches(lengths, 3)
    assert batches == [[1, 3, 6], [4, 0, 5], [2]]
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))


def test_fingerprint_changes_with_any_part():
    assert fingerprint("a", [1, 2]) == fingerprint("a", [1, 2])
    assert fingerprint("a", [1, 2]) != fingerprint("a", [2, 1])


def test_text_journal_survives_a_line_cut_by_a_crash(tmp_path):
    journal = BatchJournal(tmp_path, "generate", "k")
    journal.record_texts(0, ["a", "b"])
    journal.record_texts(2, ["c"])
    with (journal.path / "batches.jsonl").open("a") as handle:
        handle.write('{"batch": 1, "resu')  # the process died mid-write
    assert BatchJournal(tmp_path, "generate", "k").finished_texts() == {0: ["a", "b"], 2: ["c"]}
    journal.close()
    assert not journal.path.exists()


def test_tensor_journal_round_trip_and_ignores_partial_files(tmp_path):
    journal = BatchJournal(tmp_path, "capture", "k")
    journal.record_tensor(3, torch.ones(2, 4))
    (journal.path / "batch-000004.partial").write_bytes(b"garbage")
    done = BatchJournal(tmp_path, "capture", "k").finished_tensors()
    assert list(done) == [3] and torch.equal(done[3], torch.ones(2, 4))


def test_journal_without_root_is_a_no_op():
    journal = BatchJournal(None, "generate", "k")
    journal.record_texts(0, ["x"])
    assert journal.finished_texts() == {}
