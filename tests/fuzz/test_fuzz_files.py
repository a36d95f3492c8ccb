"""Fuzz the parsers that read files and rules: the directory YAML (endpoints/directory_yaml.py), the
settings YAML (signaling.settings.load_settings) and RRULEs (signaling.meetings.recurrence and the
meeting validation). Each input either parses or raises the one documented error type, whose
message names a place (file:line, or the RRULE part); never another exception, never a hang."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import strategies as st

from endpoints.directory import parse_directory
from endpoints.model import DirectoryError
from signaling.meetings import recurrence
from signaling.meetings.errors import MeetingError
from signaling.meetings.model import VN, MeetingSpec
from signaling.meetings.validation import check_spec
from signaling.settings import SettingsError, load_settings
from tests.fuzz.strategies import nasty_text, yaml_mutations
from tests.fuzz.support import SCALE, Failures, draw, record
from tests.support.harness import HAGIANG

pytestmark = pytest.mark.timeout(60 * max(1, SCALE))  # SCALE: a longer run by hand

# a small directory: the first district of Hà Giang with a few communes (fast to parse many times)
DIRECTORY = """version: 1
name: "Hà Giang"
slug: hagiang
defaults:
  commune: {kind: room_terminal, link: thin}
endpoints:
  - {id: tw, name: "Trung ương", tier: central, kind: studio, link: fibre}
  - {id: hg-ubnd, parent: tw, tier: province, name: "UBND tỉnh", kind: room_terminal, link: fibre}
  - {id: hg-meo-vac, parent: hg-ubnd, tier: district, name: "Mèo Vạc", kind: room_terminal, link: fibre}
  - {id: hg-mv-meo-vac, parent: hg-meo-vac, tier: commune, name: "Thị trấn Mèo Vạc", link: mobile}
  - {id: hg-mv-lung-pu, parent: hg-meo-vac, tier: commune, name: "Lũng Pù", credential: hagiang/lp}
  - id: hg-stttt
    parent: tw
    tier: province
    name: "Sở TT&TT"
    kind: room_terminal
    link: fibre
    sip:
      uri: "sip:hg-stttt@10.20.0.16:5060;transport=tcp"
      auth_user: hg-stttt
      allowed_sources: [10.20.0.16, 10.20.8.0/24, "fd00::/8"]
      codecs: [H264, VP8, OPUS, G722, PCMU, PCMA]
"""

SETTINGS = """host: 127.0.0.1
port: 8080
data_dir: var
media: local
ice_host: 127.0.0.1
media_serves: []
early_join_minutes: 10
log_format: json
log_level: info
trusted_proxies: [10.0.0.0/8]
limits:
  ws_rate_per_s: 20.0
  ws_burst: 60
  http_max_body_bytes: 262144
tokens:
  operator_s: 43200
sip:
  enabled: true
  host: 0.0.0.0
  port: 5060
  transports: [udp, tcp]
  tls_cert: ""
  tls_key: ""
  domain: hop.hagiang.gov.vn
"""


def test_directory_yaml(tmp_path):
    parse_directory(DIRECTORY, "base.yaml")  # the base is valid: mutations start from something real
    texts = draw(yaml_mutations(DIRECTORY) | nasty_text(300), 600)
    texts += draw(yaml_mutations(open(HAGIANG, encoding="utf-8").read()), 20)
    texts += [
        "? [a, b]\n: c\n",
        "version: 1\nname: x\nendpoints: [{? [a]: b}]\n",
        "a: &x [*x]\n",
        "version: 1e999\n",
        "version: !!python/object:os.system x\n",
        DIRECTORY.replace("10.20.8.0/24", "10.20.8.0/99"),
        DIRECTORY.replace('"sip:hg-stttt', '"sip:[::zz]'),
        DIRECTORY.replace("[H264, VP8", "[{H264: 1}, [VP8]"),
        DIRECTORY.replace("auth_user: hg-stttt", "auth_user: [a, b]"),
    ]
    with Failures() as failures:
        for text in texts:
            record("directory_yaml", text)
            with failures.on(text):
                try:
                    parse_directory(text, "fuzz.yaml")
                except DirectoryError as exc:
                    assert str(exc).startswith("fuzz.yaml:"), exc


def test_settings_yaml(tmp_path):
    path = tmp_path / "settings.yaml"
    path.write_text(SETTINGS)
    load_settings(path)
    known = [
        "? [a, b]\n: c\n",
        "host:\n",
        "limits: {? {a: 1} : 2}\n",
        "port: !!python/object:os.system x\n",
        "\ud800: 1\n",
        "limits: [1]\n",
        "port: 1e999\n",
        "a: &x [*x]\n",
        "sip: {transports: [{a: 1}, [b]]}\n",
        "sip: {port: 65536, host: '::1'}\n",
        "sip: {domain: '\u1ec7.vn'}\n",
        "sip:\n",
    ]  # found by this fuzz, or close
    with Failures() as failures:
        for text in known + draw(yaml_mutations(SETTINGS) | nasty_text(200), 600):
            record("settings_yaml", text)
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
            with failures.on(text):
                try:
                    load_settings(path)
                except SettingsError as exc:
                    assert str(exc).startswith(str(path)), exc


RULE_PARTS = st.sampled_from(
    [
        "FREQ=DAILY",
        "FREQ=WEEKLY",
        "FREQ=MONTHLY",
        "INTERVAL=1",
        "INTERVAL=7",
        "INTERVAL=100",
        "INTERVAL=0",
        "INTERVAL=²",
        "BYDAY=MO",
        "BYDAY=TU,TH",
        "BYDAY=SU",
        "BYDAY=1MO",
        "COUNT=1",
        "COUNT=1000",
        "COUNT=1001",
        "UNTIL=20300201",
        "UNTIL=20991231T235959Z",
        "UNTIL=99991231",
        "UNTIL=00010101T000000Z",
        "WKST=SU",
        "BYMONTH=1",
        "RRULE:FREQ=DAILY",
    ]
)
RULES = st.one_of(st.lists(RULE_PARTS | nasty_text(16), min_size=1, max_size=5).map(";".join), nasty_text(60))
STARTS = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2199, 12, 31)).map(
    lambda d: d.replace(second=0, microsecond=0, tzinfo=VN)
)


def test_rrules_parse_expand_and_validate(directory):
    """parse_rule, the expansion (bounded: at most 10 years, however the rule reads) and the full
    meeting check with that rule; only MeetingError naming the recurrence may come out."""
    now = datetime(2000, 1, 1, tzinfo=VN)
    with Failures() as failures:
        for text, start in draw(st.tuples(RULES, STARTS), 800):
            record("rrule", (text, start.isoformat()))
            with failures.on((text, start)):
                _check_rule(text, start, directory, now)


def _check_rule(text: str, start: datetime, directory, now: datetime) -> None:
    try:
        rule = recurrence.parse_rule(text)
    except MeetingError as exc:
        assert exc.field == "recurrence" and exc.message.startswith("recurrence"), exc
        return
    days = list(recurrence.starts(rule, start))
    assert all(start <= d <= start + recurrence.HORIZON for d in days), text
    assert days == sorted(days) and len(days) <= 3700, text
    spec = MeetingSpec(
        title="x", chair="hg-meo-vac", invited=["all"], start=start.isoformat(), duration_minutes=60, recurrence=text
    )
    try:
        check_spec(spec, directory, now)
    except MeetingError as exc:
        assert exc.field == "recurrence", exc


@pytest.fixture(scope="module")
def directory():
    from endpoints.directory import load_directory

    return load_directory(HAGIANG)


def test_rule_expansion_reaches_the_bound_quickly():
    """The worst rule for the walk (daily, never matching) ends at the 10-year bound."""
    start = datetime(2199, 12, 31, 8, 0, tzinfo=VN)
    rule = recurrence.parse_rule(
        "FREQ=DAILY;INTERVAL=7;BYDAY="
        + ",".join(d for d in recurrence.DAYS if recurrence.DAYS.index(d) != start.weekday())
    )
    assert list(recurrence.starts(rule, start)) == []
    assert list(recurrence.starts(recurrence.parse_rule("FREQ=DAILY"), start))[-1] <= start + timedelta(days=3660)
