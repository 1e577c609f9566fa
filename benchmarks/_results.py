"""One place where every benchmark records its figures: ``benchmarks/results/latest.json`` and a dated copy.

Each benchmark calls ``record(section, figures)``; sections from other benchmarks already in ``latest.json`` are kept,
so ``make bench`` (which runs them one after another) leaves one file with every key. ``BENCH_RESULTS_DIR`` moves the
files (the smoke tests write to a temporary folder so a tiny run never overwrites a real one).
"""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(os.environ.get("BENCH_RESULTS_DIR", Path(__file__).resolve().parent / "results"))
SCALE = float(os.environ.get("BENCH_SCALE", "1"))


def scaled(full: int, minimum: int = 1) -> int:
    """``full`` at ``BENCH_SCALE`` (default 1, the full scale), never below ``minimum``."""
    return max(minimum, round(full * SCALE))


def record(section: str, figures: dict[str, Any]) -> Path:
    """Merge ``figures`` under ``section`` (and their keys at the top level) into latest.json and today's copy."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    latest = RESULTS_DIR / "latest.json"
    try:
        data: dict[str, Any] = json.loads(latest.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        data = {}
    now = datetime.now(UTC)
    data.setdefault("sections", {})[section] = {
        "recorded_at": now.isoformat(timespec="seconds"),
        "bench_scale": SCALE,
        **figures,
    }
    data.update(figures)
    data["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    data["updated_at"] = now.isoformat(timespec="seconds")
    text = json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
    latest.write_text(text)
    (RESULTS_DIR / f"{now:%Y-%m-%d}.json").write_text(text)
    return latest
