"""A failure with a known cause is one line with its remedy; its traceback goes to the log file."""

from __future__ import annotations

import importlib
import logging

import pytest
from kedro.io import DatasetError

from retraction_kedro.config import Registry
from retraction_kedro.datasets.jsonl import parse_jsonl_lines
from retraction_kedro.failures import KNOWN, KnownFailure, one_line, report, traceback_requested
from retraction_kedro.lm import LibraryContractError, ModelSpec, model_shape
from retraction_kedro.lm.contracts import check_transformers_version


def raised(action) -> BaseException:
    try:
        action()
    except BaseException as error:  # noqa: BLE001 - the error under test, whatever it is
        return error
    raise AssertionError("nothing was raised")


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_every_known_failure_names_an_exception_class_that_exists(name):
    module, _, cls = name.rpartition(".")
    assert issubclass(getattr(importlib.import_module(module), cls), Exception)  # a renamed class would be missed silently


def test_a_bad_setting_is_its_message_and_where_to_fix_it():
    error = raised(lambda: Registry({"studies": {}, "truthfulness_sets": {}, "testbeds": {}}))  # a ParameterError's subclass
    assert one_line(error) == (
        "Parameter studies: exactly one study needs default: true (found none); fix it in conf/base or conf/local, or with --params"
    )


def test_library_failures_keep_their_remedy_or_get_one():
    version = raised(lambda: check_transformers_version("4.57.1"))
    assert one_line(version) == str(version) and "pip install 'transformers>=5.2,<6'" in one_line(version)
    missing = raised(lambda: model_shape(ModelSpec(name="./no/such/model")))
    assert one_line(missing) == "model.name='./no/such/model' looks like a path, but no such directory exists."
    contract = LibraryContractError("LlamaModel.forward takes none of ['cache', 'past_key_values'] (transformers 6.0)")
    assert one_line(contract).startswith(f"{contract}; this code is tested on transformers>=5.2,<6")


def test_a_known_cause_is_found_inside_the_error_kedro_wraps_it_in():
    def load():
        try:
            parse_jsonl_lines(['{"question": "Name a city."}'], "data/01_raw/x/train.jsonl", ["question", "answers"])
        except DatasetError as error:
            raise DatasetError(f"x.free_questions_train: {error}") from error  # as Kedro's catalog does

    assert one_line(raised(load)) == "data/01_raw/x/train.jsonl, line 1: missing required field 'answers'"


def test_unknown_errors_have_no_line_and_a_message_over_lines_becomes_one():
    assert one_line(ValueError("anything")) is None
    assert one_line(LibraryContractError("first\n  second")).startswith("first second; ")


@pytest.fixture
def log_file(tmp_path):
    handler = logging.FileHandler(tmp_path / "run.log", delay=True)
    logging.getLogger().addHandler(handler)
    yield tmp_path / "run.log"
    logging.getLogger().removeHandler(handler)
    handler.close()


def test_the_traceback_always_goes_to_the_log_file_and_the_line_names_it(log_file):
    error = raised(lambda: check_transformers_version("4.57.1"))
    failure = report(error, show_traceback=False)
    assert isinstance(failure, KnownFailure) and failure.exit_code == 1
    assert failure.message.startswith(one_line(error)) and str(log_file) in failure.message
    assert "RETRACTION_KEDRO_TRACEBACK=1" in failure.message and "\n" not in failure.message
    assert "Traceback (most recent call last)" in log_file.read_text() and "check_transformers_version" in log_file.read_text()


def test_asking_for_the_traceback_or_an_unknown_error_re_raises_and_still_logs_it(log_file):
    assert report(raised(lambda: check_transformers_version("4.57.1")), show_traceback=True) is None
    assert report(ValueError("something else"), show_traceback=False) is None
    assert log_file.read_text().count("The run failed") == 2


@pytest.mark.parametrize(("flag", "value", "requested"), [(False, None, False), (True, None, True), (False, "1", True), (False, "0", False)])
def test_the_traceback_is_asked_for_by_the_flag_or_the_environment(monkeypatch, flag, value, requested):
    if value is None:
        monkeypatch.delenv("RETRACTION_KEDRO_TRACEBACK", raising=False)
    else:
        monkeypatch.setenv("RETRACTION_KEDRO_TRACEBACK", value)
    assert traceback_requested(flag) is requested
