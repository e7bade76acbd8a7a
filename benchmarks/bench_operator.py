"""How long the operator features take for a site-sized address book (prints numbers, asserts nothing).

    python benchmarks/bench_operator.py --contacts 5000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from modempool.operator.campaign_plan import preview
from modempool.operator.campaign_report import progress, report
from modempool.operator.campaigns import Campaigns
from modempool.operator.contacts import AddressBook, Selection
from modempool.operator.importers import import_contacts
from modempool.spool import Spool


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = ["姓名,手机,门店"] + [f"客户{i},1395{i:07d},店{i % 7}" for i in range(args.contacts)]
        (folder / "客户.csv").write_bytes("\n".join(rows).encode("gbk"))
        spool = Spool(folder / "spool.db")
        timings = {}
        start = time.perf_counter()
        import_contacts(AddressBook(spool.db), folder / "客户.csv", groups=["客户"])
        timings["import (GBK CSV)"] = time.perf_counter() - start
        campaigns = Campaigns(spool)
        campaign = campaigns.create("bench", "{name}您好，{门店}本周八折", groups=Selection(("客户",)))
        for name, call in [("preview", lambda: preview(spool.db, campaign)),
                           ("start (enqueue all)", lambda: campaigns.start(campaign.id)),
                           ("start again (nothing new)", lambda: campaigns.start(campaign.id)),
                           ("progress", lambda: progress(spool, campaign.id)),
                           ("report", lambda: report(spool, campaign.id))]:
            start = time.perf_counter()
            call()
            timings[name] = time.perf_counter() - start
        spool.close()
    for name, seconds in timings.items():
        print(f"{name:28s} {seconds * 1000:9.1f} ms  ({args.contacts / seconds:,.0f} recipients/s)")


if __name__ == "__main__":
    main()
