"""The parity suite's closing report: one line by default, every measured error with ``--measured`` or ``-s``."""
import pytest

from parity import conftest


class _Reporter:
    def __init__(self):
        self.lines = []

    def section(self, title):
        self.lines.append(f"== {title} ==")

    def write_line(self, line):
        self.lines.append(line)


class _Config:
    def __init__(self, measured=False, capture="fd"):
        self.options = {"measured": measured, "capture": capture}

    def getoption(self, name, default=None):
        return self.options.get(name, default)


@pytest.fixture
def measured(monkeypatch):
    rows = [("aspp", "1x1024x13x13", "torch ~ keras", 1.0e-5, 1.1e-6),
            ("resnet50", "2x3x97x131", "keras ~ onnx:torch", 4.0e-5, 3.2e-6),
            ("lrn_5", "1x64x7x9", "torch ~ keras", 6.0e-8, 9.8e-8)]
    monkeypatch.setattr(conftest, "MEASURED", rows)
    return rows


@pytest.mark.parametrize("config, full", [(_Config(), False), (_Config(measured=True), True),
                                          (_Config(capture="no"), True)])
def test_one_line_by_default_the_table_on_request(measured, config, full):
    reporter = _Reporter()
    conftest.pytest_terminal_summary(reporter, config)
    print("\n".join(reporter.lines))
    assert reporter.lines[0] == "== measured errors =="
    assert reporter.lines[-1] == ("3 errors measured (relative = max|a-b| / max|a|); worst 3.20e-06 (max abs 4.00e-05): "
                                  "resnet50 2x3x97x131 keras ~ onnx:torch; --measured or -s prints them all")
    assert len(reporter.lines) == (2 + 1 + len(measured) if full else 2)


def test_nothing_measured_prints_nothing(monkeypatch):
    monkeypatch.setattr(conftest, "MEASURED", [])
    reporter = _Reporter()
    conftest.pytest_terminal_summary(reporter, _Config())
    assert reporter.lines == []
