"""The SIPp helper's message-log parser (sipp's -trace_msg format)."""

from __future__ import annotations

from tests.helpers.sipp import SCENARIO_DIR, parse_message_log

LOG = """\
----------------------------------------------- 2026-11-27 16:35:24.399710
UDP message received [940] bytes :

INVITE sip:+15551234567@127.0.0.1:5080 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bKPj1
From: "Alice \\"A\\" Example" <sip:5551234@127.0.0.1>;tag=abc
To: <sip:+15551234567@127.0.0.1>
Call-ID: 3943454c
CSeq: 19945 INVITE
X-C2C: hello
X-Folded: one
  two
Content-Type: application/sdp
Content-Length:   10

v=0
s=x

----------------------------------------------- 2026-11-27 16:35:24.399839
UDP message sent (306 bytes):

SIP/2.0 180 Ringing
Via: SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bKPj1
i: 3943454c
CSeq: 19945 INVITE
Content-Length: 0


"""


def test_parse_message_log() -> None:
    invite, ringing = parse_message_log(LOG)
    assert invite.direction == "received" and invite.is_request
    assert invite.method == "INVITE"
    assert invite.request_user == "+15551234567"
    assert invite.header("x-c2c") == "hello"
    assert invite.header("X-Folded") == "one two"
    assert invite.from_display == 'Alice "A" Example'
    assert invite.from_user == "5551234"
    assert invite.to_user == "+15551234567"
    assert invite.body == "v=0\ns=x"
    assert ringing.direction == "sent" and ringing.status == 180
    assert ringing.method == "INVITE"
    assert ringing.call_id == "3943454c"  # compact form `i:`


def test_scenarios_are_shipped() -> None:
    for name in ("uas_answer.xml", "uas_busy.xml", "uas_ring_no_answer.xml", "uas_reject.xml",
                 "uas_answer_then_bye.xml", "uac_call.xml"):
        assert (SCENARIO_DIR / name).is_file(), name
