"""`modempool doctor`: each check against a fake machine (a /proc tree, /etc/group, udev rule
directories, the disk, the clock), since this test machine has no ModemManager; the command's
exit status."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from modempool.box.doctor import Environment, Level, diagnose
from modempool.config import parse_config
from modempool.spool import Spool, utcnow
from tests.modempool.daemon_harness import modempool_cli


def fake_process(proc: Path, pid: int, command: str, open_files: list[str] = ()) -> None:
    directory = proc / str(pid)
    (directory / "fd").mkdir(parents=True)
    (directory / "comm").write_text(Path(command.split()[0]).name[:15] + "\n")
    (directory / "cmdline").write_bytes(command.replace(" ", "\0").encode() + b"\0")
    for number, path in enumerate(open_files, start=3):
        (directory / "fd" / str(number)).symlink_to(os.path.realpath(path))


@pytest.fixture
def box(tmp_path):
    """A machine: two modem ports (one held by minicom), ModemManager running and holding the
    other, a user outside dialout, no udev rules, no time zone, a nearly full disk."""
    ports = [tmp_path / "dev" / "ttyUSB0", tmp_path / "dev" / "ttyUSB2"]
    for port in ports:
        port.parent.mkdir(exist_ok=True)
        port.touch()
    proc = tmp_path / "proc"
    fake_process(proc, 612, "/usr/sbin/ModemManager", [str(ports[0])])
    fake_process(proc, 4242, "minicom -D /dev/ttyUSB2", [str(ports[1])])
    fake_process(proc, 1, "/sbin/init")
    (tmp_path / "group").write_text("root:x:0:\ndialout:x:20:alice\nbob:x:1000:\n")
    (tmp_path / "rules.d").mkdir()
    config = parse_config(
        f'[spool]\npath = "{tmp_path}/spool/pool.db"\n'
        f'[[modem]]\nname = "m1"\nport = "{ports[0]}"\n'
        f'[[modem]]\nname = "m2"\nport = "{ports[1]}"\n'
        f'[[modem]]\nname = "m3"\nport = "{tmp_path}/dev/ttyUSB9"\n', tmp_path / "m.toml")
    env = Environment(proc=proc, group_file=tmp_path / "group", rules_dirs=(tmp_path / "rules.d",),
                      localtime=tmp_path / "no-localtime", user="bob", uid=1000, group_ids=(),
                      environ={}, disk_free=lambda path: 300 * 1024 ** 2,
                      can_open=lambda port: False, lock_dir=str(tmp_path / "lock"))
    return config, env, tmp_path


def by_check(findings):
    out: dict[str, list] = {}
    for finding in findings:
        out.setdefault(finding.check, []).append(finding)
    return out


def test_every_problem_of_a_fresh_box_is_found_with_what_to_do(box):
    config, env, tmp_path = box
    spool = Spool(config.spool_path)
    spool.store_inbound("+8613900139000", "hi", sim="m1",
                        received_at=utcnow() - timedelta(minutes=40))   # the network's clock
    spool.upsert_sim("m2", state="quarantined", last_error="the SIM refused its PIN")
    spool.record_refused_pin("iccid:8986001", "1234", sim="m2", reason="+CME ERROR: 16",
                             attempts_left=2)
    spool.upsert_sim("m3", state="down", last_error="SIM PUK required")
    found = by_check(diagnose(config, env, spool))

    [missing] = found["ports"]
    assert missing.blocking and "m3" in missing.message and "ttyUSB9" in missing.message
    [manager] = found["modemmanager"]
    assert manager.blocking and "pid 612" in manager.message and "ttyUSB0" in manager.message
    assert "ID_MM_DEVICE_IGNORE" in manager.fix and "systemctl disable --now ModemManager" in manager.fix
    [dialout] = found["dialout"]
    assert dialout.blocking and "bob" in dialout.message and "usermod -aG dialout bob" in dialout.fix
    [held] = found["held"]
    assert held.blocking and "pid 4242 (minicom -D /dev/ttyUSB2)" in held.message
    assert "kill 4242" in held.fix
    [rules] = found["udev"]
    assert rules.level is Level.WARNING and "modempool udev --install" in rules.fix
    [disk] = found["disk"]
    assert disk.level is Level.WARNING and "300 MiB" in disk.message
    [zone] = found["timezone"]
    assert zone.level is Level.WARNING and "timedatectl set-timezone" in zone.fix
    [clock] = found["clock"]
    assert clock.level is Level.WARNING and "40 min ahead" in clock.message
    [pin, puk] = found["pin"]
    assert pin.blocking and "m2" in pin.message and "refused its configured PIN" in pin.message
    assert "2 attempt(s) left" in pin.message and "1234" not in pin.message
    assert puk.blocking and "m3" in puk.message and "PUK" in puk.fix
    assert found["spool"][0].level is Level.OK


def test_a_healthy_box_has_nothing_blocking(box):
    config, env, tmp_path = box
    healthy = parse_config(
        f'[spool]\npath = "{tmp_path}/spool/pool.db"\n[pool]\ntimezone = "Asia/Shanghai"\n'
        f'[[modem]]\nname = "m1"\nport = "{tmp_path}/dev/ttyUSB0"\n', tmp_path / "ok.toml")
    import shutil

    shutil.rmtree(env.proc / "612")                       # ModemManager disabled
    (env.rules_dirs[0] / "99-modempool.rules").write_text(
        '# modempool\nENV{ID_MM_DEVICE_IGNORE}="1"\n')
    env.group_file.write_text("dialout:x:20:alice,bob\n")
    env.disk_free = lambda path: 50 * 1024 ** 3
    findings = diagnose(healthy, env, Spool(healthy.spool_path))
    assert [f for f in findings if f.level is not Level.OK] == []


def test_doctor_exits_non_zero_when_something_blocks_sending(tmp_path):
    config = tmp_path / "modempool.toml"
    config.write_text(f'[spool]\npath = "{tmp_path}/pool.db"\n'
                      f'[[modem]]\nname = "m1"\nport = "{tmp_path}/ttyUSB7"\n')
    result = modempool_cli("doctor", config=config)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "PROBLEM" in result.stdout and "ttyUSB7 does not exist" in result.stdout
    simulated = tmp_path / "sim.toml"
    simulated.write_text(f'[spool]\npath = "{tmp_path}/pool.db"\n[pool]\ntimezone = "UTC"\n'
                         '[simulator]\nmodems = 2\n')
    fine = modempool_cli("doctor", config=simulated)
    assert fine.returncode == 0, fine.stdout
    assert "nothing blocks sending" in fine.stdout
