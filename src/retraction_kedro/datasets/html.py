"""An HTML page as a versioned catalog entry that kedro-viz previews."""

from __future__ import annotations

from kedro_datasets._typing import HTMLPreview
from kedro_datasets.text import TextDataset


class HTMLDataset(TextDataset):
    def preview(self) -> HTMLPreview:
        return HTMLPreview(self.load())
