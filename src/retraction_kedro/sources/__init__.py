"""External data sources: the paper's released files."""

from retraction_kedro.sources.paper import (
    DEFAULT_BASE_URL,
    DEFAULT_CONTINUATION_MODEL,
    DEFAULT_LOCAL_ROOT,
    PAPER_FILES,
    REQUIRED_FIELDS,
    VERIFICATION_RESPONSE_FIELD,
    PaperDataUnavailable,
    PaperFile,
    continuation_file_key,
    continuation_file_path,
    fetch_paper_files,
    load_paper_table,
    normalize_continuation_rows,
    paper_file,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_CONTINUATION_MODEL",
    "DEFAULT_LOCAL_ROOT",
    "PAPER_FILES",
    "REQUIRED_FIELDS",
    "VERIFICATION_RESPONSE_FIELD",
    "PaperDataUnavailable",
    "PaperFile",
    "continuation_file_key",
    "continuation_file_path",
    "fetch_paper_files",
    "load_paper_table",
    "normalize_continuation_rows",
    "paper_file",
]
