"""Score anomaly detectors on the Numenta Anomaly Benchmark (NAB).

`scorer` implements NAB's scoring rules and `offline` runs Tocsin's streaming
detector over the NAB corpus (`python -m bench.nab.offline`). The corpus is
read from <repo>/../shared/data/NAB.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NAB_DIR = REPO.parent / "shared" / "data" / "NAB"
