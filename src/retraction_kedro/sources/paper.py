"""The paper's released data (``ayyyq/llm-retraction``, folder ``data/``): registry, fetching and validation.

Every file is known by a stable key (``PAPER_FILES``) that maps to its path relative to the
repository's ``data/`` folder and to its *kind*, which fixes the fields a row must carry
(``REQUIRED_FIELDS``). ``fetch_paper_files`` uses a local copy when there is one and otherwise
downloads the file (atomically, validated before it is kept); ``load_paper_table`` reads a file
and checks the fields and their types, failing with a message that names file, line and field.
"""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retraction_kedro.datasets.jsonl import JSONLFormatError, parse_jsonl_lines, read_jsonl

DEFAULT_BASE_URL = "https://raw.githubusercontent.com/ayyyq/llm-retraction/main/data/"
REPOSITORY_DATA_URL = "https://github.com/ayyyq/llm-retraction/tree/main/data"
#: Where the project expects a copy of the paper's ``data/`` folder (relative to the project root).
DEFAULT_LOCAL_ROOT = "data/01_raw/paper"
#: The model whose continuation sets the paper released and this registry lists by plain key.
DEFAULT_CONTINUATION_MODEL = "Llama-3.1-8B-Instruct"

TESTBEDS = ("wikidata", "celebrity")
CONTINUATION_SPLITS = ("train", "test", "val")
#: The models whose continuation sets the paper released (their folder names), and the splits released
#: per testbed: Qwen and OLMo have no CELEBRITY train set, and their CELEBRITY test sets are unbalanced.
RELEASED_CONTINUATIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "Llama-3.1-8B-Instruct": {"wikidata": ("train", "test", "val"), "celebrity": ("train", "test")},
    "Qwen2.5-7B-Instruct": {"wikidata": ("train", "test", "val"), "celebrity": ("test",)},
    "OLMo-2-1124-7B-Instruct": {"wikidata": ("train", "test", "val"), "celebrity": ("test",)},
}
#: The field holding the model's answer to the verification question, per testbed.
VERIFICATION_RESPONSE_FIELD = {"wikidata": "where_response", "celebrity": "parent_response"}

_WIKIDATA_QUESTION = ("profession", "city", "country")
_CELEBRITY_QUESTION = ("parent_type", "parent_name")
_CONTINUATION = ("question", "messages", "name", "result", "index")

#: Fields every row of a file of the given kind must carry.
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "wikidata_free": (*_WIKIDATA_QUESTION, "question", "messages", "answers"),
    "celebrity_free": (*_CELEBRITY_QUESTION, "question", "messages", "answers"),
    "truthfulness": ("question", "answer", "label", "messages"),
    "wikidata_continuation": (*_CONTINUATION, "where_response"),
    "celebrity_continuation": (*_CONTINUATION, "parent_response"),
    "celebrity_parent": (*_CELEBRITY_QUESTION, "question", "messages", "name", "result", "index"),
    "wikidata_city": ("city_code", "city", "country"),
    "wikidata_profession": ("profession_code", "profession"),
    "celebrity_raw": ("celebrity_code", "celebrity", "father", "mother"),
    "truthfulness_source": ("question", "answer", "label"),
}

#: Kinds whose rows are continuation prompts ("question -> answer name", left open).
CONTINUATION_KINDS = {"wikidata_continuation": "wikidata", "celebrity_continuation": "celebrity"}


class PaperDataUnavailable(RuntimeError):
    """Paper files that are neither present locally nor downloadable; the message says where to put them."""


class NoReleasedSets(ValueError):
    """The paper released no continuation sets for this model; the message (one line) lists the models it did."""


@dataclass(frozen=True)
class PaperFile:
    """One released file: ``path`` relative to the repository's ``data/`` folder, and its kind.

    ``absent_fields`` are fields the kind requires but this particular released file lacks
    (they are not required when the file is loaded by its key).
    """

    path: str
    kind: str
    absent_fields: tuple[str, ...] = ()

    @property
    def format(self) -> str:
        return "json" if self.path.endswith(".json") else "jsonl"

    @property
    def required_fields(self) -> tuple[str, ...]:
        return tuple(field for field in REQUIRED_FIELDS[self.kind] if field not in self.absent_fields)


def _check_continuation_args(testbed: str, split: str) -> None:
    if testbed not in TESTBEDS:
        raise ValueError(f"unknown testbed {testbed!r}; expected one of {list(TESTBEDS)}")
    if split not in CONTINUATION_SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {list(CONTINUATION_SPLITS)}")


def continuation_file_key(testbed: str, split: str, model_name: str = DEFAULT_CONTINUATION_MODEL) -> str:
    """Registry key of a released continuation set; other models than the default get ``@<model>``."""
    _check_continuation_args(testbed, split)
    key = f"{testbed}_{split}_continuation"
    return key if model_name == DEFAULT_CONTINUATION_MODEL else f"{key}@{model_name}"


def continuation_file_path(testbed: str, split: str, model_name: str = DEFAULT_CONTINUATION_MODEL) -> str:
    """Path, relative to the paper's ``data/`` folder, of a model's continuation set."""
    _check_continuation_args(testbed, split)
    if not model_name or "/" in model_name or model_name in (".", ".."):
        raise ValueError(f"model_name must be a bare model folder name such as {DEFAULT_CONTINUATION_MODEL!r}, got {model_name!r}")
    return f"{testbed}/{testbed}_continuation/{model_name}/{testbed}_{split}_continuation.jsonl"


def _continuation_entry(testbed: str, split: str, model_name: str = DEFAULT_CONTINUATION_MODEL) -> PaperFile:
    absent: tuple[str, ...] = ()
    if (testbed, split, model_name) == ("wikidata", "train", "Llama-3.1-8B-Instruct"):
        # The released Llama wikidata train set has no verification response (other sets do).
        absent = ("where_response",)
    return PaperFile(continuation_file_path(testbed, split, model_name), f"{testbed}_continuation", absent)


def _build_registry() -> dict[str, PaperFile]:
    files: dict[str, PaperFile] = {}
    for split in ("train", "test"):
        files[f"wikidata_{split}_free"] = PaperFile(f"wikidata/wikidata_{split}_free.jsonl", "wikidata_free")
        files[f"celebrity_{split}_free"] = PaperFile(f"celebrity/celebrity_{split}_free.jsonl", "celebrity_free")
        files[f"celebrity_{split}_parent"] = PaperFile(f"celebrity/celebrity_{split}_parent.jsonl", "celebrity_parent")
        files[f"truthfulness_{split}"] = PaperFile(f"universal_truthfulness/truthfulness_{split}.jsonl", "truthfulness")
    for model_name, testbeds in RELEASED_CONTINUATIONS.items():
        for testbed, splits in testbeds.items():
            for split in splits:
                files[continuation_file_key(testbed, split, model_name)] = _continuation_entry(testbed, split, model_name)
    files["wikidata_city"] = PaperFile("wikidata/city.jsonl", "wikidata_city")
    files["wikidata_profession"] = PaperFile("wikidata/profession.jsonl", "wikidata_profession")
    files["celebrity_raw"] = PaperFile("celebrity/celebrity_continuation/raw_celebrity.jsonl", "celebrity_raw")
    for source in ("nq_re", "triva_qa_re", "sciq"):
        for split in ("train", "vali"):
            files[f"truthfulness_{source}_{split}"] = PaperFile(
                f"universal_truthfulness/{source}/{source}_probe_{split}.json", "truthfulness_source"
            )
    return files


#: Stable key -> released file.
PAPER_FILES: dict[str, PaperFile] = _build_registry()


def paper_file(key: str) -> PaperFile:
    """The registry entry for ``key``; ``<testbed>_<split>_continuation@<model>`` names another model's set."""
    if key in PAPER_FILES:
        return PAPER_FILES[key]
    base, sep, model_name = key.partition("@")
    if sep and base.endswith("_continuation"):
        testbed, _, split = base[: -len("_continuation")].partition("_")
        try:
            return _continuation_entry(testbed, split, model_name)
        except ValueError as error:
            raise ValueError(f"unknown paper file key {key!r}: {error}") from None
    raise ValueError(f"unknown paper file key {key!r}; known keys: {sorted(PAPER_FILES)}")


def released_model_folder(model_name: str, override: str | None = None) -> str:
    """The folder of the paper's released continuation sets for the model under study.

    ``override`` (``paper_data.released_model``) when given, else the last part of ``model_name``: a
    hub id (``Qwen/Qwen2.5-7B-Instruct``) or a local directory named after the model both end in the
    folder name; a hub cache snapshot (``.../snapshots/<hash>``) does not, hence the override. Case is
    ignored. The base models (``Llama-3.1-8B``) are other models: their answers are not these sets.
    """
    wanted = override or model_name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    folders = {folder.lower(): folder for folder in RELEASED_CONTINUATIONS}
    if wanted.lower() in folders:
        return folders[wanted.lower()]
    asked = f"paper_data.released_model {override!r}" if override else f"model.name {model_name!r}"
    raise NoReleasedSets(
        f"The paper released no continuation sets for {asked}; models with released sets: {', '.join(RELEASED_CONTINUATIONS)} "
        "(set paper_data.released_model to one of them when model.name is a local copy, or build this model's own sets "
        "with the data_construction_paper pipeline, without --env paper_released)"
    )


def released_splits(model_folder: str, testbed: str) -> tuple[str, ...]:
    """Splits of ``testbed`` the paper released for ``model_folder`` (a key of ``RELEASED_CONTINUATIONS``)."""
    if testbed not in TESTBEDS:
        raise ValueError(f"unknown testbed {testbed!r}; expected one of {list(TESTBEDS)}")
    return RELEASED_CONTINUATIONS[model_folder][testbed]


# --------------------------------------------------------------------------- validation


def _fail(source: str, where: str, field: str, problem: str) -> JSONLFormatError:
    return JSONLFormatError(f"{source}, {where}: field {field!r} {problem}")


def _check_string(value: Any, source: str, where: str, field: str) -> None:
    if not isinstance(value, str):
        raise _fail(source, where, field, f"must be a string, got {type(value).__name__}")


def _check_messages(value: Any, source: str, where: str) -> None:
    if not isinstance(value, list) or not value:
        raise _fail(source, where, "messages", "must be a non-empty list of {role, content} objects")
    for position, message in enumerate(value):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str) or not isinstance(message.get("content"), str):
            raise _fail(source, where, "messages", f"item {position} must be an object with string 'role' and 'content', got {message!r:.120}")


def _check_row(row: Mapping[str, Any], kind: str, source: str, where: str) -> None:
    if "answers" in row:
        answers = row["answers"]
        if not isinstance(answers, list) or not answers or not all(isinstance(a, str) for a in answers):
            raise _fail(source, where, "answers", f"must be a non-empty list of strings, got {answers!r:.120}")
    if "messages" in row:
        _check_messages(row["messages"], source, where)
    if "label" in row:
        label = row["label"]
        if type(label) not in (int, bool) or label not in (0, 1):
            raise _fail(source, where, "label", f"must be 0 or 1, got {label!r}")
    if "result" in row and not isinstance(row["result"], bool):
        raise _fail(source, where, "result", f"must be a boolean, got {row['result']!r}")
    if "index" in row and (type(row["index"]) is not int or row["index"] < 0):
        raise _fail(source, where, "index", f"must be a non-negative integer, got {row['index']!r}")
    for field in ("question", "answer", "name", "profession", "city", "country", "parent_type", "parent_name"):
        if field in row:
            _check_string(row[field], source, where, field)
    if "parent_type" in row and row["parent_type"] not in ("mother", "father"):
        raise _fail(source, where, "parent_type", f"must be 'mother' or 'father', got {row['parent_type']!r}")
    testbed = CONTINUATION_KINDS.get(kind)
    if testbed is not None:
        response_field = VERIFICATION_RESPONSE_FIELD[testbed]
        if row.get(response_field) is not None:
            _check_string(row[response_field], source, where, response_field)
        last = row["messages"][-1]
        if last["role"] != "assistant" or last["content"] != row["name"]:
            raise _fail(source, where, "messages", "must end with the assistant turn holding exactly the answer 'name' (the open continuation)")


def _parse_rows(text_lines: Iterable[str], source: str, fmt: str, required: Sequence[str]) -> tuple[list[dict[str, Any]], str]:
    """Rows of a JSONL or JSON-list file, with required fields checked; also the word for a row position."""
    if fmt == "jsonl":
        return parse_jsonl_lines(text_lines, source, required), "line"
    try:
        data = json.loads("".join(text_lines))
    except json.JSONDecodeError as error:
        raise JSONLFormatError(f"{source}, line {error.lineno}: not valid JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(data, list):
        raise JSONLFormatError(f"{source}: expected a JSON list of objects, got {type(data).__name__}")
    for number, row in enumerate(data, start=1):
        if not isinstance(row, dict):
            raise JSONLFormatError(f"{source}, item {number}: expected a JSON object, got {type(row).__name__}")
        missing = [field for field in required if field not in row]
        if missing:
            raise JSONLFormatError(f"{source}, item {number}: missing required field {missing[0]!r}")
    return data, "item"


def _row_positions(text_lines: Sequence[str], fmt: str, count: int) -> list[int]:
    """1-based line numbers of the rows of a JSONL file (blank lines skipped), or item numbers for JSON."""
    if fmt != "jsonl":
        return list(range(1, count + 1))
    return [number for number, line in enumerate(text_lines, start=1) if line.strip()]


def _resolve(kind_or_key: str | PaperFile) -> PaperFile:
    if isinstance(kind_or_key, PaperFile):
        return kind_or_key
    if kind_or_key in REQUIRED_FIELDS:
        return PaperFile(path="", kind=kind_or_key)
    try:
        return paper_file(kind_or_key)
    except ValueError:
        raise ValueError(
            f"{kind_or_key!r} is neither a paper file key nor a kind; kinds: {sorted(REQUIRED_FIELDS)}, keys: {sorted(PAPER_FILES)}"
        ) from None


def _check_rows(rows: list[dict[str, Any]], positions: Sequence[int], word: str, entry: PaperFile, source: str) -> list[dict[str, Any]]:
    for row, number in zip(rows, positions, strict=True):
        _check_row(row, entry.kind, source, f"{word} {number}")
    testbed = CONTINUATION_KINDS.get(entry.kind)
    return normalize_continuation_rows(rows, testbed, source=source, validate=False) if testbed else rows


def _validate(lines: Sequence[str], source: str, fmt: str, entry: PaperFile) -> list[dict[str, Any]]:
    rows, word = _parse_rows(lines, source, fmt, entry.required_fields)
    return _check_rows(rows, _row_positions(lines, fmt, len(rows)), word, entry, source)


def load_paper_table(path: str | os.PathLike[str], kind_or_key: str | PaperFile) -> list[dict[str, Any]]:
    """Rows of a paper file (JSONL, or a JSON list for ``.json``), validated for the kind's fields and types.

    ``kind_or_key`` is a kind of ``REQUIRED_FIELDS`` or a key of ``PAPER_FILES`` (a key also knows
    which fields its released file lacks). Continuation rows are passed through
    ``normalize_continuation_rows``. Problems raise ``JSONLFormatError`` naming file, line and field.
    """
    entry = _resolve(kind_or_key)
    path = os.fspath(path)
    if path.endswith(".json"):
        with open(path, encoding="utf-8") as handle:
            return _validate(handle.readlines(), path, "json", entry)
    rows = read_jsonl(path, entry.required_fields)
    with open(path, encoding="utf-8") as handle:
        positions = [number for number, line in enumerate(handle, start=1) if line.strip()]
    return _check_rows(rows, positions, "line", entry, path)


def normalize_continuation_rows(
    rows: Iterable[Mapping[str, Any]], testbed: str, source: str = "<rows>", validate: bool = True
) -> list[dict[str, Any]]:
    """Continuation rows in the shared schema (released and constructed files alike).

    The released keys are kept as they are: question fields, ``messages`` (system, user question,
    assistant = the answer name, left open), ``name``, ``result``, ``index`` and the testbed's
    verification response (``where_response`` / ``parent_response``). The only change: a row without
    the verification response (the released Llama wikidata train set has none) gets it as ``None``,
    so every continuation table has the same columns. With ``validate`` the rows are checked first.
    """
    if testbed not in VERIFICATION_RESPONSE_FIELD:
        raise ValueError(f"unknown testbed {testbed!r}; expected one of {list(TESTBEDS)}")
    response_field = VERIFICATION_RESPONSE_FIELD[testbed]
    kind = f"{testbed}_continuation"
    required = [field for field in REQUIRED_FIELDS[kind] if field != response_field]
    out: list[dict[str, Any]] = []
    for number, row in enumerate(rows, start=1):
        if validate:
            if not isinstance(row, Mapping):
                raise JSONLFormatError(f"{source}, row {number}: expected an object, got {type(row).__name__}")
            missing = [field for field in required if field not in row]
            if missing:
                raise JSONLFormatError(f"{source}, row {number}: missing required field {missing[0]!r}")
            _check_row(row, kind, source, f"row {number}")
        new = dict(row)
        new.setdefault(response_field, None)
        out.append(new)
    return out


# --------------------------------------------------------------------------- fetching


def _download(url: str, target: Path, entry: PaperFile, timeout: float) -> None:
    """Download ``url`` to ``target`` through ``target.partial``; keep it only if it validates."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "retraction-kedro"})
        with urllib.request.urlopen(request, timeout=timeout) as response, open(partial, "wb") as handle:
            expected = response.headers.get("Content-Length")
            received = 0
            while chunk := response.read(1 << 20):
                handle.write(chunk)
                received += len(chunk)
        if expected is not None and expected.isdigit() and int(expected) != received:
            raise JSONLFormatError(f"{url}: truncated download ({received} of {expected} bytes)")
        try:
            text = partial.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise JSONLFormatError(f"{url}: not UTF-8 text ({error.reason} at byte {error.start})") from None
        lines = [line + "\n" for line in text.split("\n")]  # "\n" only: JSON strings may hold U+2028
        rows = _validate(lines, url, entry.format, entry)
        if not rows:
            raise JSONLFormatError(f"{url}: the file holds no rows")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _reason(error: BaseException, url: str) -> tuple[str, bool]:
    """A one-line reason, and whether the failure looks like no network at all (skip further tries)."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}", False
    if isinstance(error, urllib.error.URLError):
        reason = error.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            return "timed out", True
        return f"cannot connect ({reason})", True
    if isinstance(error, (TimeoutError, socket.timeout)):
        return "timed out", True
    if isinstance(error, JSONLFormatError):
        text = str(error)
        if text.startswith(url):
            text = text[len(url) :].lstrip(":, ")
        return f"downloaded file rejected ({text})", False
    if isinstance(error, OSError):
        return f"{type(error).__name__}: {error}", False
    return f"{type(error).__name__}: {error}", False


def fetch_paper_files(
    root: str | os.PathLike[str],
    keys: Iterable[str],
    base_url: str = DEFAULT_BASE_URL,
    timeout: float = 30.0,
    allow_download: bool = True,
) -> dict[str, Path]:
    """Local paths of the paper files ``keys``: ``root/<path>`` when present, else downloaded there.

    Downloads go through a ``.partial`` file and are validated (JSONL, or JSON for ``.json``, with
    the kind's fields and types) before they are renamed into place, so a half-written or garbage
    file is never left behind. When a file is missing and cannot be had (download disabled,
    offline, HTTP error, timeout, invalid content) ``PaperDataUnavailable`` lists every missing
    file, where to put it and the URL tried. After a connection failure the remaining files are
    not tried (each would wait for the same timeout).
    """
    root_path = Path(root).absolute()
    entries = {key: paper_file(key) for key in dict.fromkeys(keys)}
    base = base_url if base_url.endswith("/") else base_url + "/"
    found: dict[str, Path] = {}
    missing: list[tuple[str, Path, str, str]] = []
    offline_reason: str | None = None
    for key, entry in entries.items():
        target = root_path / entry.path
        if target.is_file():
            found[key] = target
            continue
        url = base + entry.path
        if not allow_download:
            missing.append((key, target, url, "not downloaded: downloads are disabled (allow_download=False)"))
            continue
        if offline_reason is not None:
            missing.append((key, target, url, f"not tried after an earlier connection failure ({offline_reason})"))
            continue
        try:
            _download(url, target, entry, timeout)
        except Exception as error:  # noqa: BLE001 - every failure becomes one clear message below
            reason, offline = _reason(error, url)
            if offline:
                offline_reason = reason
            missing.append((key, target, url, reason))
            continue
        found[key] = target
    if missing:
        raise PaperDataUnavailable(_unavailable_message(root_path, missing)) from None
    return found


def _unavailable_message(root: Path, missing: list[tuple[str, Path, str, str]]) -> str:
    lines = [f"{len(missing)} file(s) of the paper's released data are missing under {root} and could not be downloaded:"]
    for key, target, url, reason in missing:
        lines.append(f"  - {key}: expected at {target}")
        lines.append(f"      source {url} -> {reason}")
    example = "" if root.as_posix().endswith(DEFAULT_LOCAL_ROOT) else f" (the project's default is {DEFAULT_LOCAL_ROOT}/)"
    lines.append(
        f"To fix: copy the paper's data/ folder ({REPOSITORY_DATA_URL}) to {root}/{example}, keeping its "
        "sub-folders, so that the paths above exist; or run again with network access to download them."
    )
    return "\n".join(lines)
