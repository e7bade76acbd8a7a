"""`modempool demo`: the README's first command runs end to end and exits 0."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.modempool.daemon_harness import REPO

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize("flags", [["--plain"], []], ids=["plain", "live"])
def test_demo_sends_spreads_over_sims_and_stores_the_replies(flags, tmp_path):
    done = subprocess.run([sys.executable, "-m", "cli", "demo", *flags], cwd=tmp_path,
                          capture_output=True, text=True, timeout=80,
                          env={"COLUMNS": "120", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "all messages delivered, all replies stored" in out
    for sim in ("m1", "m2", "m3", "m4"):
        assert sim in out
    assert "China Mobile" in out and "China Unicom" in out and "China Telecom" in out
    assert "收到，我会准时到。" in out and "谢谢！❤️" in out          # replies, Chinese and emoji
    assert out.count("delivered") >= 6
    assert not list(tmp_path.iterdir())                          # it leaves nothing behind
