import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def train_rows():
    return [
        {"id": i, "prompt": f"question {i}?", "support": f"support answer {i}.", "oppose": f"oppose answer {i}."}
        for i in range(1, 11)
    ]


@pytest.fixture
def write_json(tmp_path):
    def write(name, content):
        path = tmp_path / name
        path.write_text(json.dumps(content, ensure_ascii=False))
        return path

    return write
