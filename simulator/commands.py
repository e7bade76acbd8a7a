"""General AT commands of a simulated modem: V.250 basics, identity, SIM, network, USSD.

Each handler answers one command in its four forms (exec, `?`, `=?`, `=`); the SMS commands of
TS 27.005 are in `simulator/sms_commands.py`. Both fill `TABLE`.
"""

from __future__ import annotations

from simulator.at_syntax import AtFailure, Command, CommandTable, Form, Reply, cme
from simulator.modem import VirtualModem
from simulator.network import OPERATORS, PinState

TABLE = CommandTable()
command = TABLE.command


def _int(value: str, allowed: range) -> int:
    number = int(value)
    if number not in allowed:
        raise ValueError(value)
    return number


# -- V.250 basics --------------------------------------------------------------------------
@command("E")
def echo(modem: VirtualModem, form: Form, args: list[str]) -> None:
    modem.settings.echo = _int(args[0] or "0", range(2)) == 1


@command("V")
def verbose(modem: VirtualModem, form: Form, args: list[str]) -> None:
    modem.settings.verbose = _int(args[0] or "0", range(2)) == 1


@command("Z", "&F")
def reset(modem: VirtualModem, form: Form, args: list[str]) -> None:
    """Back to the power-on profile (echo on, CMEE 0, PDU mode, the vendor's CNMI)."""
    modem.settings = modem.power_on_settings()


@command("Q", "X", "H", "&W", "&C", "&D", "&K", "&V", "+CLIP", "+CRC", "+CVHU", "+CHUP",
         "+IFC", "+IPR", "+CMUX")
def accepted(modem: VirtualModem, form: Form, args: list[str]) -> list[str] | None:
    if form is Form.TEST:
        raise AtFailure()
    return None


@command("I")
def information(modem: VirtualModem, form: Form, args: list[str]) -> list[str]:
    return [line.format(imei=modem.imei) for line in modem.personality.ati_lines]


def _s_register(modem: VirtualModem, form: Form, args: list[str]) -> list[str] | None:
    return ["000"] if form is Form.READ else None


for _number in range(13):
    TABLE.commands[f"S{_number}"] = Command(f"S{_number}", _s_register)


@command("D")
def dial(modem: VirtualModem, form: Form, args: list[str]) -> list[str]:
    modem.require_sim("CME")
    if not modem.registered:
        return ["NO CARRIER"]
    raise AtFailure()  # a voice/data call is beyond this simulator


@command("+CMEE")
def cmee(modem: VirtualModem, form: Form, args: list[str]) -> list[str] | None:
    if form is Form.READ:
        return [f"+CMEE: {modem.settings.cmee}"]
    if form is Form.TEST:
        return ["+CMEE: (0-2)"]
    modem.settings.cmee = _int(args[0] or "0", range(3))
    return None


# -- identity ------------------------------------------------------------------------------
def _identity(value: str):
    def handler(modem: VirtualModem, form: Form, args: list[str]) -> list[str] | None:
        if form is Form.TEST:
            return None
        return [getattr(modem.personality, value, None) or getattr(modem, value)]
    return handler


for _names, _field in ((("+CGMI", "+GMI"), "manufacturer"), (("+CGMM", "+GMM"), "model"),
                       (("+CGMR", "+GMR"), "revision"), (("+CGSN", "+GSN"), "imei")):
    command(*_names)(_identity(_field))


@command("+CIMI", sim="cme")
def cimi(modem: VirtualModem, form: Form, args: list[str]) -> list[str] | None:
    return None if form is Form.TEST else [modem.sim.imsi]


def iccid(modem: VirtualModem, form: Form, args: list[str], *, name: str = "") -> list[str] | None:
    if form is Form.TEST:
        return None
    if not modem.sim_present:
        raise cme(10)
    if not modem.sim.iccid:   # a firmware that knows no ICCID command
        raise AtFailure()
    return [modem.personality.iccid_commands.get(name, "+CCID: ") + modem.sim.iccid]


def _iccid_for(name: str):
    return lambda modem, form, args: iccid(modem, form, args, name=name)


for _name in ("+CCID", "^ICCID", "+QCCID", "+ZGETICCID", "+ICCID"):
    command(_name)(_iccid_for(_name))


@command("+CNUM", sim="cme")
def cnum(modem: VirtualModem, form: Form, args: list[str]) -> list[str] | None:
    return None if form is Form.TEST else [f'+CNUM: "","{modem.sim.msisdn}",145']


@command("+CLAC")
def clac(modem: VirtualModem, form: Form, args: list[str]) -> list[str]:
    names = sorted(name for name in modem.table if name[0] in "+^&")
    return ["AT" + name for name in names] + ["AT" + extra for extra in
                                              modem.personality.extra_commands]


# -- SIM -----------------------------------------------------------------------------------
@command("+CPIN")
def cpin(modem: VirtualModem, form: Form, args: list[str]) -> list[str] | None:
    if form is Form.TEST:
        return None
    if not modem.sim_present:
        raise cme(10)
    sim = modem.sim
    if sim.pin_state is PinState.BLOCKED:
        raise cme(13)
    if form is Form.READ:  # some firmware never ends this answer with OK
        return Reply(lines=[f"+CPIN: {sim.pin_state.value}"],
                     omit_result="+CPIN" in modem.personality.unterminated_replies)
    if form is not Form.SET or not args[0]:
        raise cme(50)
    if sim.pin_state is PinState.PIN:
        if args[0] == sim.pin:
            sim.pin_state, sim.pin_attempts = PinState.READY, 3
        else:
            sim.pin_attempts -= 1
            if sim.pin_attempts <= 0:
                sim.pin_state = PinState.PUK
            raise cme(16)
    elif sim.pin_state is PinState.PUK:
        if len(args) < 2 or not args[1]:
            raise cme(50)
        if args[0] == sim.puk:
            sim.pin, sim.pin_state, sim.pin_attempts, sim.puk_attempts = (
                args[1], PinState.READY, 3, 10)
        else:
            sim.puk_attempts -= 1
            if sim.puk_attempts <= 0:
                sim.pin_state = PinState.BLOCKED
            raise cme(16)
    else:
        raise cme(3)
    modem.registration_changed()
    return None


@command("+CPINR")
def cpinr(modem: VirtualModem, form: Form, args: list[str]) -> list[str] | None:
    """TS 27.007 8.65: +CPINR: <code>,<retries>,<default retries>, for the codes asked for."""
    if form is Form.TEST:
        return None
    if not modem.sim_present:
        raise cme(10)
    sim = modem.sim
    lines = {"SIM PIN": f'+CPINR: "SIM PIN",{sim.pin_attempts},3',
             "SIM PUK": f'+CPINR: "SIM PUK",{sim.puk_attempts},10'}
    wanted = args[0].upper() if form is Form.SET and args and args[0] else ""
    return [line for code, line in lines.items() if wanted in ("", code)]


def _vendor_pin_counter(name: str, render):
    def handler(modem: VirtualModem, form: Form, args: list[str]) -> list[str] | None:
        if name not in modem.personality.extra_commands:
            raise AtFailure()
        if form is Form.TEST:
            return None
        if not modem.sim_present:
            raise cme(10)
        return [render(modem.sim)]
    return handler


# The vendors' own counters: Huawei ^CPIN (<code>,[<times>],<puk>,<pin>,<puk2>,<pin2>),
# Quectel +QPINC="SC" ("SC",<pin>,<puk>), SIMCom +SPIC (<pin1>,<puk1>,<pin2>,<puk2>).
command("^CPIN")(_vendor_pin_counter("^CPIN", lambda sim: (
    f'^CPIN: "{sim.pin_state.value}",,{sim.puk_attempts},{sim.pin_attempts},10,3')))
command("+QPINC")(_vendor_pin_counter("+QPINC", lambda sim: (
    f'+QPINC: "SC",{sim.pin_attempts},{sim.puk_attempts}')))
command("+SPIC")(_vendor_pin_counter("+SPIC", lambda sim: (
    f"+SPIC: {sim.pin_attempts},{sim.puk_attempts},3,10")))


@command("+CFUN")
def cfun(modem: VirtualModem, form: Form, args: list[str]) -> Reply | list[str] | None:
    if form is Form.READ:
        return [f"+CFUN: {modem.cfun}"]
    if form is Form.TEST:
        return ["+CFUN: (0,1,4),(0-1)"]
    level = _int(args[0], range(0, 5))
    if len(args) > 1 and args[1] == "1":
        modem.reboot(announce=False)
        modem.cfun = level
        return Reply(then=[line.format(rssi=modem.sim.rssi, imei=modem.imei)
                           for line in modem.personality.boot_urcs])
    modem.cfun = level
    modem.registration_changed()
    return None


# -- network -------------------------------------------------------------------------------
@command("+CSQ")
def csq(modem: VirtualModem, form: Form, args: list[str]) -> list[str]:
    if form is Form.TEST:
        return ["+CSQ: (0-31,99),(0-7,99)"]
    return [f"+CSQ: {modem.sim.rssi},99" if modem.registered else "+CSQ: 99,99"]


def _registration(prefix: str, setting: str):
    def handler(modem: VirtualModem, form: Form, args: list[str]) -> list[str] | None:
        if form is Form.TEST:
            return [f"{prefix}: (0-2)"]
        if form is Form.SET:
            setattr(modem.settings, setting, _int(args[0] or "0", range(3)))
            return None
        n = getattr(modem.settings, setting)
        stat = 1 if modem.registered else (2 if modem.sim_present and modem.cfun == 1 else 0)
        location = ',"2540","0E1F"' if n == 2 and stat == 1 else ""
        return [f"{prefix}: {n},{stat}{location}"]
    return handler


command("+CREG")(_registration("+CREG", "creg"))
command("+CGREG")(_registration("+CGREG", "cgreg"))


@command("+COPS")
def cops(modem: VirtualModem, form: Form, args: list[str]) -> list[str] | None:
    operator = modem.sim.operator
    if form is Form.TEST:
        found = ",".join(
            f'({2 if o is operator else 1},"{o.name}","{o.short}","{o.plmn}",0)' for o in OPERATORS)
        return [f"+COPS: {found},,(0,1,2,3,4),(0,1,2)"]
    if form is Form.SET:
        if len(args) > 1 and args[1]:
            modem.settings.cops_format = _int(args[1], range(3))
        return None
    if not modem.registered:
        return ["+COPS: 0"]
    fmt = modem.settings.cops_format
    name = (operator.name, operator.short, operator.plmn)[fmt]
    return [f'+COPS: 0,{fmt},"{name}",0']


@command("+CPAS")
def cpas(modem: VirtualModem, form: Form, args: list[str]) -> list[str]:
    return ["+CPAS: (0-5)"] if form is Form.TEST else ["+CPAS: 0"]


@command("+CBC")
def cbc(modem: VirtualModem, form: Form, args: list[str]) -> list[str] | None:
    return None if form is Form.TEST else ["+CBC: 0,100,4200"]


@command("+CSCS")
def cscs(modem: VirtualModem, form: Form, args: list[str]) -> list[str] | None:
    if form is Form.READ:
        return [f'+CSCS: "{modem.settings.cscs}"']
    if form is Form.TEST:
        return ['+CSCS: ("GSM","IRA","UCS2")']
    if form is Form.SET:
        if args[0].upper() not in ("GSM", "IRA", "UCS2"):
            raise cme(4) if modem.settings.cmee else AtFailure()
        modem.settings.cscs = args[0].upper()
    return None


# -- USSD ----------------------------------------------------------------------------------
def _from_charset(modem: VirtualModem, text: str) -> str:
    if modem.settings.cscs == "UCS2" and text and all(c in "0123456789abcdefABCDEF" for c in text):
        try:
            return bytes.fromhex(text).decode("utf-16-be")
        except ValueError:
            return text
    return text


@command("+CUSD", sim="cme-set")
def cusd(modem: VirtualModem, form: Form, args: list[str]) -> Reply | list[str] | None:
    if form is Form.READ:
        return [f"+CUSD: {modem.settings.cusd}"]
    if form is Form.TEST:
        return ["+CUSD: (0,1,2)"]
    if form is Form.EXEC:
        return None
    modem.settings.cusd = _int(args[0] or "0", range(3))
    if len(args) < 2 or not args[1]:
        return None
    if not modem.registered:
        raise cme(30)
    code = _from_charset(modem, args[1])
    sim = modem.sim
    if not (code.startswith(("*", "#")) and code.endswith("#")):
        return Reply(then=["+CUSD: 4"], then_delay=modem.command_delay())
    if modem.settings.cscs == "UCS2":
        text = f"尊敬的客户，您的账户余额为{sim.balance:.2f}元。"
        reply = f'+CUSD: 0,"{text.encode("utf-16-be").hex().upper()}",72'
    else:
        reply = f'+CUSD: 0,"Your balance is {sim.balance:.2f} CNY.",{modem.personality.ussd_dcs}'
    return Reply(then=[reply], then_delay=modem.command_delay())


# -- vendor extras that clients probe ------------------------------------------------------
@command("^SYSINFO")
def sysinfo(modem: VirtualModem, form: Form, args: list[str]) -> list[str]:
    """Huawei's service summary: <srv_status>,<srv_domain>,<roam>,<sys_mode>,<sim_state>."""
    return [f"^SYSINFO:{2 if modem.registered else 0},3,0,5,{1 if modem.sim_present else 255}"]


def _vendor(name: str):
    def handler(modem: VirtualModem, form: Form, args: list[str]) -> list[str] | None:
        if name not in modem.personality.extra_commands:
            raise AtFailure()
        switch = name == modem.personality.urc_switch  # AT^CURC=0, AT+WIND=0, AT+QINDCFG="csq",1
        if form is Form.READ:
            return [f"{name}: {modem.settings.curc if switch else 0}"]
        if switch and form is Form.SET:
            modem.settings.curc = int(args[-1] or "0")
        return None
    return handler


for _name in ("+WIND", "^CURC", "^USSDMODE", "^CVOICE", "+DDET", "+ZPAS", "+QURCCFG",
              "+QINDCFG", "+WOPEN", "+WMBS", "+CSPN", "+CBAND", "+ZSNT", "+ZOPRT", "+ZCDRUN",
              "+QCFG", "^HWVER"):
    command(_name)(_vendor(_name))
