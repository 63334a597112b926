"""The demo phones' SIPp scenarios (c2c_ari/localasterisk/scenarios), as the product ships
and renders them: well-formed XML (sipp refuses anything else, and `--` inside a comment is
an easy slip), with the carrier's recording put in place, or left out when missing."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from c2c_ari.localasterisk.demo import PHONES, SCENARIOS, Phone, render_scenario


def _execs(text: str) -> list[str]:
    return [e.get("play_pcap_audio", "") for e in ET.fromstring(text).iter("exec")]


@pytest.mark.parametrize("phone", PHONES, ids=[p.name for p in PHONES])
def test_scenarios_are_shipped_and_well_formed(phone: Phone, tmp_path: Path) -> None:
    assert (SCENARIOS / phone.scenario).is_file()
    pcap = tmp_path / "audio.pcap"
    pcap.write_bytes(b"")
    for recording in (pcap, tmp_path / "missing.pcap"):
        text, _audio = render_scenario(phone, recording)
        assert ET.fromstring(text).tag == "scenario"
        assert "DEMO_AUDIO_PCAP" not in text


def test_the_carrier_plays_the_recording_when_there_is_one(tmp_path: Path) -> None:
    carrier = next(p for p in PHONES if p.name == "carrier")
    pcap = tmp_path / "g711a.pcap"
    pcap.write_bytes(b"")
    text, audio = render_scenario(carrier, pcap)
    assert audio
    assert _execs(text) == [str(pcap)]
    text, audio = render_scenario(carrier, tmp_path / "missing.pcap")
    assert not audio
    assert _execs(text) == []
