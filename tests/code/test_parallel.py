"""parallel_map: same results as a plain loop, in a plain unguarded script too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from genreflow.core.parallel import parallel_map


def test_parallel_map_keeps_order_and_results():
    jobs = list(range(20))
    assert parallel_map(abs, [-j for j in jobs], workers=2, chunksize=3) == jobs
    assert parallel_map(abs, [-1], workers=2) == [1]  # fewer than min_jobs: in-process


def test_parallel_map_from_a_script_without_main_guard(tmp_path: Path):
    """Without TensorFlow loaded, workers are forked: a script needs no __main__ guard."""
    script = tmp_path / "plain.py"
    script.write_text("from genreflow.core.parallel import parallel_map\n"
                      "print(parallel_map(abs, [-3, -2, -1, 0], workers=2, chunksize=1))\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[3, 2, 1, 0]"
