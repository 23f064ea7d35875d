from kedro.io.core import Version

from retraction_kedro.datasets import HTMLDataset


def test_html_page_round_trips_and_previews_for_kedro_viz(tmp_path):
    dataset = HTMLDataset(filepath=str(tmp_path / "report.html"), version=Version(None, None))
    dataset.save("<html><body><h1>Study</h1></body></html>")
    assert dataset.load().startswith("<html>")
    assert "<h1>Study</h1>" in dataset.preview()
    assert len(list((tmp_path / "report.html").iterdir())) == 1  # one versioned folder
