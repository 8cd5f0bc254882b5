"""Running the ``ringback`` command in tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


DEMO = REPO / "src" / "ringback" / "demo" / "locations.yaml"


def ringback(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "RINGBACK_CONFIG": str(DEMO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "ringback.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )
