"""The self-check users run first on their machine: one line per check, a failing check fails the command."""

from __future__ import annotations

from retraction_kedro import doctor
from retraction_kedro.lm import selfcheck


def test_the_self_check_passes_here_and_prints_one_line_per_check(capfd):
    """capfd: what libraries write to the file descriptor itself (the tiny tokenizer's trainer drew its
    progress there as blank lines) counts too."""
    assert doctor.main(["--device", "cpu", "--architectures", "llama,mistral"]) == 0
    out = capfd.readouterr().out.splitlines()
    assert all(line.strip() for line in out), "blank lines in the self-check's output"
    assert out[1].startswith("versions: python") and "transformers" in out[1]
    checks = [line for line in out if line[:5].strip() in ("ok", "FAIL", "skip") and "tested range" not in line]
    names = {(line.split()[1], line.split()[2]) for line in checks}
    assert names == {(a, c) for a in ("llama", "mistral") for c in ("generation", "static", "capture", "attention", "steering", "generate")}
    skipped = {tuple(line.split()[1:3]): line for line in checks if line.startswith("skip")}
    assert "sliding-window" in skipped.pop(("mistral", "static"))
    if skipped:  # a transformers whose StaticCache predates the static path (the floor): the loop runs everything
        assert "StaticCache has no running length" in skipped.pop(("llama", "static"))
    assert not skipped and not any(line.startswith("FAIL") for line in checks)
    ran = len(checks) - sum(line.startswith("skip") for line in checks)
    assert out[-1].startswith(f"{ran} of {ran} checks passed ({len(checks) - ran} skipped)")


def test_a_check_beyond_its_tolerance_fails_the_command(capsys, monkeypatch):
    """The decode loop with its rows' positions off (a classic padding bug): the cache still grows as it
    should, so only the comparison with the model's own forward can tell."""
    real = selfcheck.decode

    def shifted(model, batch, rule, choose):
        batch.position_ids += 3
        return real(model, batch, rule, choose)

    monkeypatch.setattr(selfcheck, "decode", shifted)
    assert doctor.main(["--device", "cpu", "--architectures", "llama"]) == 1
    captured = capsys.readouterr()
    failed = [line for line in captured.out.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1 and failed[0].split()[1:3] == ["llama", "generation"]
    assert float(failed[0].split("error ")[1].split()[0]) > 0.3
    assert "FAILED llama generation" in captured.err


def test_an_unsupported_transformers_is_the_first_and_only_failure(capsys, monkeypatch):
    monkeypatch.setattr(doctor, "versions", lambda: {"python": "3.11", "transformers": "4.57.1"})
    from retraction_kedro.lm import contracts

    real = contracts.check_transformers_version
    monkeypatch.setattr(contracts, "check_transformers_version", lambda installed=None: real("4.57.1"))
    assert doctor.main(["--device", "cpu"]) == 1
    assert capsys.readouterr().out.splitlines()[-1].startswith("FAIL retraction_kedro needs transformers>=5.2,<6")
