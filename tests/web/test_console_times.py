"""Every time the console shows is in `[pool] timezone` (as the CLI shows it), not UTC and
not the server process's zone: a zone far from both (Chatham, UTC+13:45) makes it plain."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from modempool import Pool
from modempool.when import as_moment
from test_console_http import signed_in

ZONE = "Pacific/Chatham"


@pytest.fixture
def config_path(config_path):
    config_path.write_text(f'[pool]\ntimezone = "{ZONE}"\n' + config_path.read_text("utf-8"),
                           encoding="utf-8")
    return config_path


def shown(moment) -> str:
    return as_moment(moment).astimezone(ZoneInfo(ZONE)).strftime("%Y-%m-%d %H:%M:%S")


def test_every_page_shows_times_in_the_pools_time_zone(api):
    received = datetime(2026, 3, 1, 0, 0, tzinfo=timezone.utc)   # 13:45 in Chatham
    with Pool(api.config) as pool:
        pool.spool.store_inbound("13800138000", "几点开会？", sim="m1", received_at=received)
        campaign = pool.campaigns.create("家长会", "开会", numbers=["13800138000"], kind="notice")
        message = pool.spool.enqueue("+8613800138000", "明天开会")
        pool.add_optouts(["13900139000"])
        [optout] = pool.optouts.optouts()
        pool.autoreplies.record("+8613800138000", "db:1", None, None, "cooldown", received)
    root = signed_in(api, "root")
    pages = {"/conversations": [received], "/conversations/+8613800138000": [received],
             "/campaigns": [campaign.created_at], "/optouts": [optout["created_at"]],
             "/messages": [message.created_at], f"/messages/{message.id}": [message.created_at],
             "/history?text=开会": [received, message.created_at],
             "/autoreplies": [received]}   # the auto-reply log: typed entries, aware times
    for path, moments in pages.items():
        page = root.get(path)
        assert page.status_code == 200, path
        for moment in moments:
            assert shown(moment) in page.text, (path, moment)
        assert "2026-03-01 00:00" not in page.text, path   # the received SMS's UTC
