"""Custom Kedro datasets of this project (referenced from conf/base/catalog.yml)."""

from .html import HTMLDataset
from .jsonl import JSONLDataset, JSONLFormatError, parse_jsonl_lines, read_jsonl, rows_to_frame
from .mlflow_metrics import MlflowMetricsHistoryBatchDataset
from .model_dir import ModelDirectoryDataset

__all__ = ["HTMLDataset", "JSONLDataset", "JSONLFormatError", "MlflowMetricsHistoryBatchDataset", "ModelDirectoryDataset", "parse_jsonl_lines", "read_jsonl", "rows_to_frame"]
