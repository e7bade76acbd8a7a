"""A bank of virtual GSM modems on pseudo-terminals, joined by a virtual network.

    from simulator import SimulatedBank, Fault
    async with SimulatedBank(modems=2, directory=tmp_path, personality="simcom") as bank:
        bank.devices  # ["…/m1", "…/m2"]: open them with pyserial, gammu, python-gsmmodem…

`SimulatorProcess` runs the same bank as a subprocess (`python -m simulator`) and talks to it
over its control socket. See docs/simulator.md.
"""

from simulator.bank import ModemInfo, SimulatedBank
from simulator.faults import Fault
from simulator.personalities import PERSONALITIES, Personality

__all__ = ["SimulatedBank", "SimulatorProcess", "ModemInfo", "Fault", "Personality",
           "PERSONALITIES"]


def __getattr__(name: str):  # the subprocess wrapper loads only when asked for
    if name == "SimulatorProcess":
        from simulator.control import SimulatorProcess
        return SimulatorProcess
    raise AttributeError(name)
