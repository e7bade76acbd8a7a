"""`python -m modempool.web.sidecar`: the API and webhook process that `modempool run` starts
(see server.py). Not meant to be run by hand; `modempool serve` is the command for that.

It runs at a lower CPU priority than the daemon (`[http] sidecar_nice`, 5 by default): when
the machine is short of CPU, the modems go first and the API answers later, never the other
way round."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from modempool.errors import PoolError
from modempool.logs import one_line_driver_logs
from modempool.web.server import load_for_sidecar, run_event_loop, serve_api


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modempool-sidecar")
    parser.add_argument("--config")
    parser.add_argument("--spool", required=True)
    parser.add_argument("--listen")
    parser.add_argument("--parent", type=int)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    one_line_driver_logs()
    try:
        config = load_for_sidecar(args.config, args.spool)
        os.nice(config.http.sidecar_nice)   # below the daemon, whose niceness it inherited
        run_event_loop(serve_api(config, args.listen, parent_pid=args.parent,
                                  checkpoints=False, freeze_heap=True))  # the daemon checkpoints
    except PoolError as exc:
        print(f"modempool sidecar: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
