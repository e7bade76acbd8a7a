"""`python -m simulator --modems N --dir DIR`: the bank in the foreground (as `modempool sim start`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from simulator.bank import SimulatedBank
from simulator.control import parse_fault_options, serve
from simulator.personalities import PERSONALITIES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    parser.add_argument("--modems", type=int, default=4)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--personality", default="simcom",
                        help=f"one of {', '.join(PERSONALITIES)}, or 'mixed'")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--realistic", action="store_true",
                        help="the personality's typical timings (about 3 s per SMS)")
    parser.add_argument("--fault", action="append", default=[],
                        help="MODEM:FAULT[:key=value,...], e.g. m2:cms_error:code=500")
    parser.add_argument("--chatter", type=float, default=1.0,
                        help="scale of the vendors' periodic URCs (Huawei ^RSSI...); 0: none")
    parser.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    try:
        bank = SimulatedBank(args.modems, args.dir, personality=args.personality, seed=args.seed,
                             latency=args.latency, realistic=args.realistic,
                             faults=parse_fault_options(args.fault), chatter=args.chatter)
        asyncio.run(serve(bank, lambda line: print(line, flush=True)))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
