"""Configuration: defaults, conversions, and errors that name file, line and key."""

from __future__ import annotations

from datetime import datetime, time, timezone
from importlib.resources import files
from pathlib import Path

import pytest

from modempool.config import Config, load_config
from modempool.errors import ConfigError

MINIMAL = """\
[spool]
path = "pool.db"

[[modem]]
name = "m1"
port = "/dev/serial/by-path/usb-0:1.1"
"""


def write(tmp_path: Path, text: str, name: str = "modempool.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value


def test_minimal_config_gets_defaults(tmp_path):
    config = load_config(write(tmp_path, MINIMAL))
    assert config.spool_path == tmp_path / "pool.db"  # relative to the file
    assert [m.name for m in config.modems] == ["m1"]
    assert config.modems[0].per_day is None and config.modems[0].allow_prefixes == ()
    assert config.region == "CN" and config.strategy == "least-loaded"
    assert config.retry.max_attempts >= 1 and config.retry.resend_ambiguous is False
    assert config.quiet_hours == (time(22, 0), time(8, 0))
    assert config.simulator is None


def test_full_config_is_converted(tmp_path):
    text = MINIMAL + """\
pin = "1234"
per_minute = 6
per_day = 500
per_month = 10000
allow_prefixes = ["+86138", "+86139"]
allow_carriers = ["China Mobile"]
priority = 2

[[modem]]
name = "m2"
port = "/dev/ttyUSB1"

[pool]
region = "gb"
strategy = "carrier_affinity"
timezone = "Asia/Shanghai"

[retry]
max_attempts = 3
backoff = 5
resend_ambiguous = true

[quiet_hours]
start = "21:30"
end = "07:45"

[simulator]
modems = 3
latency = 0.5

[optout]
keywords = ["TD", "退订"]
"""
    config = load_config(write(tmp_path, text))
    m1 = config.modem("m1")
    assert (m1.pin, m1.per_minute, m1.per_day, m1.per_month, m1.priority) == ("1234", 6, 500, 10000, 2)
    assert m1.allow_prefixes == ("+86138", "+86139") and m1.allow_carriers == ("China Mobile",)
    assert config.modem("m2").port == "/dev/ttyUSB1"
    assert config.region == "GB" and config.strategy == "carrier-affinity"
    assert config.tz is not None and config.timezone == "Asia/Shanghai"
    assert (config.retry.max_attempts, config.retry.backoff, config.retry.resend_ambiguous) == (3, 5.0, True)
    assert config.quiet_hours == (time(21, 30), time(7, 45))
    assert config.simulator == 3 and config.simulation.latency == 0.5
    assert config.optout.keywords == ("TD", "退订") and config.optout.block_direct is False
    shanghai_23h = datetime(2026, 3, 1, 15, 0, tzinfo=timezone.utc)   # 23:00 in Shanghai
    shanghai_noon = datetime(2026, 3, 1, 4, 0, tzinfo=timezone.utc)
    assert config.is_quiet(shanghai_23h) and not config.is_quiet(shanghai_noon)


@pytest.mark.parametrize(
    ("extra", "line", "key", "words"),
    [
        ('per_day = "lots"\n', 7, "per_day", "integer"),
        ("per_dya = 5\n", 7, "per_dya", "did you mean 'per_day'"),
        ("pin = 12\n", 7, "pin", "PIN"),
        ('allow_prefixes = ["138"]\n', 7, "allow_prefixes", "E.164"),
        ('\n[pool]\nstrategy = "fastest"\n', 9, "strategy", "fastest"),
        ('\n[pool]\nregion = "XX"\n', 9, "region", "region"),
        ('\n[quiet_hours]\nstart = "25:00"\n', 9, "start", "25:00"),
        ("\n[spol]\npath = 'x'\n", 8, "spol", "did you mean [spool]"),
        ("\n[retry]\nmax_attempts = 0\n", 9, "max_attempts", "at least 1"),
        ("answer_wait = 0\n", 7, "answer_wait", "seconds > 0"),
        ("timeouts = { lst = 60 }\n", 7, "timeouts", "did you mean 'list'"),
        ("timeouts = { list = -1 }\n", 7, "timeouts", "list: expected a number of seconds"),
        ("timeouts = 60\n", 7, "timeouts", "table of command = seconds"),
        ("\n[timing]\ntimeouts = { send_result = 90 }\n", 9, "timeouts", "[retry] send_timeout"),
        ("\n[timing]\nanswer_wait = 'slow'\n", 9, "answer_wait", "seconds > 0"),
        # TOML allows nan and inf; a wait must end (rev24 F1: nan killed `run` with a traceback)
        ("\n[timing]\nanswer_wait = nan\n", 9, "answer_wait", "seconds > 0"),
        ("answer_wait = inf\n", 7, "answer_wait", "seconds > 0"),
        ("\n[timing]\ntimeouts = { send = nan }\n", 9, "timeouts", "send: expected a number"),
        ("\n[timing]\ntimeouts = { list = inf }\n", 9, "timeouts", "list: expected a number"),
    ],
)
def test_bad_values_name_file_line_and_key(tmp_path, extra, line, key, words):
    path = write(tmp_path, MINIMAL + extra)
    error = error_of(path)
    assert (error.file, error.line, error.key) == (str(path), line, key)
    assert str(path) in str(error) and f"line {line}" in str(error) and key in str(error)
    assert words in str(error)


def test_timing_defaults_and_a_modems_own_waits_over_the_pools(tmp_path):
    config = load_config(write(tmp_path, MINIMAL))
    assert config.timing.of(config.modems[0]) == (1.0, {})        # today's waits: the table's
    text = MINIMAL + """answer_wait = 3
timeouts = { send = 20 }

[[modem]]
name = "m2"
port = "/dev/ttyUSB1"

[timing]
answer_wait = 0.5
timeouts = { list = 60, send = 12.5 }
"""
    config = load_config(write(tmp_path, text))
    assert config.timing.of(config.modem("m1")) == (3.0, {"list": 60.0, "send": 20.0})
    assert config.timing.of(config.modem("m2")) == (0.5, {"list": 60.0, "send": 12.5})


def test_second_modem_error_points_into_the_second_table(tmp_path):
    text = MINIMAL + '\n[[modem]]\nname = "m2"\nport = "/dev/ttyUSB1"\nper_day = -3\n'
    error = error_of(write(tmp_path, text))
    assert error.line == 11 and error.key == "per_day" and "[[modem]] #2" in str(error)


def test_missing_port_and_duplicate_names(tmp_path):
    error = error_of(write(tmp_path, '[spool]\npath = "a.db"\n\n[[modem]]\nname = "m1"\n'))
    assert (error.line, error.key) == (4, "port")
    error = error_of(write(tmp_path, MINIMAL + MINIMAL.split("\n", 3)[3]))
    assert error.key == "name" and "duplicate" in str(error)


def test_toml_syntax_error_gives_the_line(tmp_path):
    path = write(tmp_path, MINIMAL + 'per_day = \n')
    error = error_of(path)
    assert error.line == 7 and error.key == "per_day" and "not valid TOML" in str(error)


def test_a_table_written_as_single_modem(tmp_path):
    error = error_of(write(tmp_path, '[modem]\nname = "m1"\nport = "/dev/x"\n'))
    assert error.line == 1 and "[[modem]]" in str(error)


def test_missing_file_is_a_config_error(tmp_path):
    error = error_of(tmp_path / "nope.toml")
    assert "not found" in str(error) and error.file.endswith("nope.toml")


def test_default_search_and_embedded_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    embedded = load_config()
    assert embedded.path is None and embedded.simulator and embedded.modems == ()
    assert embedded.spool_path == tmp_path / "modempool.db"
    user = tmp_path / "home" / ".config" / "modempool"
    user.mkdir(parents=True)
    write(user, MINIMAL)
    assert load_config().path == user / "modempool.toml"
    write(tmp_path, MINIMAL.replace("pool.db", "here.db"))
    assert load_config().spool_path == tmp_path / "here.db"  # ./modempool.toml first
    assert load_config(simulate=2).simulator == 2


def test_init_template_is_a_valid_config(tmp_path):
    text = files("modempool").joinpath("init_template.toml").read_text("utf-8")
    config = load_config(write(tmp_path, text))
    assert isinstance(config, Config) and len(config.modems) == 1
    assert config.spool_path == tmp_path / "modempool.db"


def test_every_commented_example_in_the_template_is_valid(tmp_path):
    import re

    text = files("modempool").joinpath("init_template.toml").read_text("utf-8")
    everything = re.sub(r"(?m)^# (?=\[|\w+ = )", "", text)  # uncomment every example
    assert everything.count("\n# ") < text.count("\n# ")
    config = load_config(write(tmp_path, everything))
    assert [m.name for m in config.modems] == ["m1", "m2"]
    assert config.modems[0].per_day == 500 and config.simulator == 4
    assert config.timezone == "Asia/Shanghai"
    assert config.log_file == str(tmp_path / "modempool.log")   # beside the config file
    assert [rule.ussd or rule.sms_to for rule in config.balance] == ["*100#", "10086"]
    assert config.lock_dir == "/run/lock" and config.log_format == "text"
    answer_wait, timeouts = config.timing.of(config.modems[0])
    assert answer_wait == 3.0 and timeouts["list"] == 60.0 and timeouts["send"] == 10.0


def test_open_spool_uses_the_configured_path_and_region(tmp_path):
    config = load_config(write(tmp_path, MINIMAL + '\n[pool]\nregion = "GB"\n'))
    with config.open_spool() as spool:
        assert spool.enqueue("07400 123456", "hi").to == "+447400123456"
    assert (tmp_path / "pool.db").exists()
