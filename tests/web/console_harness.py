"""A simulated bank behind the console: the real daemon driving simulated modems over ptys and
the real HTTP server (uvicorn) on 127.0.0.1, both in one thread with its own event loop, over
one spool file; and a real headless Chromium from Debian's packages driven by Selenium."""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from http_harness import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# where the browser tests save their screenshots (a few are copied to docs/img/ by hand)
SCREENSHOTS = Path(os.environ.get("MODEMPOOL_SCREENSHOTS")
                   or Path(tempfile.gettempdir()) / "modempool-screenshots")
# flags for a closed machine: no sandbox as root, nothing fetched from the network
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                  "--window-size=1280,900")

CONFIG = """\
[spool]
path = "{spool}"

[simulator]
modems = 2

[retry]
backoff = 0.2
backoff_max = 1.0
"""


class Bank:
    """The daemon (simulated modems) and the API/console server, in a thread."""

    def __init__(self, directory: Path) -> None:
        from modempool.config import load_config

        path = directory / "modempool.toml"
        path.write_text(CONFIG.format(spool=directory / "spool.db"), encoding="utf-8")
        self.config = load_config(path)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.daemon: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True, name="bank")

    def _main(self) -> None:
        from modempool.dispatch.daemon import Daemon
        from modempool.web.server import serve_api

        async def main() -> None:
            self.loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            self.daemon = Daemon(self.config, install_signals=False)
            served = asyncio.Event()
            async with asyncio.TaskGroup() as tasks:
                running = tasks.create_task(self.daemon.run())
                tasks.create_task(serve_api(self.config, f"127.0.0.1:{self.port}", stop=self._stop,
                                            webhooks=False, ready=served.set))
                await served.wait()
                await self.daemon.ready.wait()
                self._ready.set()
                await self._stop.wait()
                self.daemon.stop()
                await running

        try:
            asyncio.run(main())
        except BaseException as exc:
            self.error = exc
        finally:
            self._ready.set()

    def start(self) -> Bank:
        self._thread.start()
        assert self._ready.wait(60), "the simulated bank did not start"
        if self.error:
            raise self.error
        return self

    def inject(self, sim: str, sender: str, text: str) -> None:
        """An SMS from `sender` arrives on `sim` (as a phone would send it)."""
        assert self.loop is not None
        asyncio.run_coroutine_threadsafe(self.daemon.bank.inject(sim, sender, text),
                                         self.loop).result(30)

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


def start_chromium(profile: Path) -> Any:
    """Headless Chromium through Debian's chromedriver, with a new empty profile in the
    directory `profile` (the test's own: removed with its other temporary files)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from tests.programs import require_program

    require_program("chromium")
    require_program("chromedriver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument("--lang=en-US")
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
