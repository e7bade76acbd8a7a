"""`modempool demo`: the README's first command runs end to end and exits 0."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from modempool.spool import Spool
from tests.modempool.daemon_harness import REPO

# Hang guards only: the demo takes seconds, longer on a loaded machine, and stops by itself
# (exit 1) when nothing moved for 40 s.
pytestmark = pytest.mark.timeout(660)

#: where the run keeps bytecode (tests/conftest.py), so that the demo writes none beside the
#: sources and compiles nothing the run has compiled already
_BYTECODE = {name: os.environ[name]
             for name in ("PYTHONPYCACHEPREFIX", "PYTHONDONTWRITEBYTECODE") if name in os.environ}


@pytest.mark.parametrize("flags", [["--plain"], []], ids=["plain", "live"])
def test_demo_sends_spreads_over_sims_and_stores_the_replies(flags, tmp_path):
    cwd, kept = tmp_path / "cwd", tmp_path / "kept.db"
    cwd.mkdir()
    keep = ["--spool", str(kept)] if flags else []   # the live run leaves nothing at all
    done = subprocess.run([sys.executable, "-m", "cli", "demo", *flags, *keep], cwd=cwd,
                          capture_output=True, text=True, timeout=600,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO),   # a pipe
                               **_BYTECODE})
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "all messages delivered, all replies stored" in out
    # what it says of the spool is true: the file kept, or a temporary one that is gone
    assert (f"spool {kept}, " if keep else
            "spool in a temporary file, removed at the end (--spool FILE keeps it)") in out
    assert "demo.db" not in out
    # in a pipe the tables keep their columns whole (rich's 80 columns cut them: "deliver…")
    for cut in ("deliver…", "carri…", "Telec…", "+86137001370…"):
        assert cut not in out, out
    assert " carrier " in out and " parts " in out
    for sim in ("m1", "m2", "m3", "m4"):
        assert sim in out
    assert "China Mobile" in out and "China Unicom" in out and "China Telecom" in out
    assert "收到，我会准时到。" in out and "谢谢！❤️" in out          # replies, Chinese and emoji
    assert out.count("delivered") >= 9
    # The campaign: template fields filled in per parent, a reply shown with the contact's name,
    # and the 退订 reply landing in the opt-out list.
    assert "campaign 家长会通知" in out
    assert "王芳家长您好：本周五下午3点在三年级一班" in out and "李强家长您好" in out
    assert "收到，一定准时到。" in out
    assert "campaign 家长会通知: 3 delivered, 2 replies, 1 opt-out" in out
    assert "opted out: +8613300133003 赵敏 (replied 退订); confirmation sent" in out
    assert "the same campaign now reaches 2 of 3 parents (left out: +8613300133003)" in out
    assert not list(cwd.iterdir())                               # it leaves nothing behind
    if keep:
        with Spool(kept) as spool:
            opted = spool.db.execute("SELECT number, keyword, source FROM optouts").fetchall()
            assert [tuple(r) for r in opted] == [("+8613300133003", "退订", "reply")]
            names = dict(spool.db.execute(
                "SELECT i.sender, c.name FROM inbound i JOIN contacts c ON c.number = i.sender"))
            assert names == {"+8613700137001": "王芳", "+8613300133003": "赵敏"}
            confirmation = [m for m in spool.list() if m.to == "+8613300133003"
                            and m.campaign_id is None]
            assert [(m.text, m.state.value) for m in confirmation] == [
                ("您已成功退订，将不再收到此类短信。", "delivered")]
