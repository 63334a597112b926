"""The call plan: which leg is dialled first, with which caller ID, headers and variables."""

from __future__ import annotations

from typing import Any

from c2c_ari.domain.plan import build_plan

C2C: dict[str, Any] = {"id": "a" * 32, "name": "Sales", "extension": "1001",
                       "auth_required": True, "timeout": 30}


def _plan(**overrides: Any):
    return build_plan(
        account_id="b" * 32, clicktocall={**C2C, **overrides}, contact="+4930123456",
        custom_application_vars={"campaign": "x"},
        extension_endpoint="PJSIP/{extension}", contact_endpoint="PJSIP/{contact}@trunk",
    )


def test_extension_first_by_default_with_kazoo_caller_ids() -> None:
    plan = _plan()
    assert (plan.first.role, plan.second.role) == ("extension", "contact")
    assert plan.first.endpoint == "PJSIP/1001"
    assert plan.second.endpoint == "PJSIP/+4930123456@trunk"
    # the agent sees the visitor's number and the click-to-call's name
    assert plan.first.caller_id == '"Sales" <+4930123456>'
    # the visitor sees the extension unless outbound_callee_id_* say otherwise
    assert plan.second.caller_id == '"1001" <1001>'
    assert plan.call_id.startswith("c2c-" + "a" * 32 + "-")
    assert {plan.first.channel_id, plan.second.channel_id, plan.bridge_id} == {
        plan.call_id + "-ext", plan.call_id + "-contact", plan.call_id + "-bridge"}


def test_contact_first_and_explicit_caller_ids() -> None:
    plan = _plan(dial_first="contact", caller_id_number="+15550000000",
                 outbound_callee_id_name="ACME", outbound_callee_id_number="+15551111111")
    assert (plan.first.role, plan.second.role) == ("contact", "extension")
    assert plan.leg("extension").caller_id == '"Sales" <+15550000000>'
    assert plan.leg("contact").caller_id == '"ACME" <+15551111111>'


def test_outbound_headers_and_variables_on_both_legs() -> None:
    plan = _plan(custom_sip_headers={"X-Flat": "1", "out": {"X-Out": "2"},
                                     "in": {"X-In": "3"}})
    for leg in (plan.first, plan.second):
        assert leg.variables["PJSIP_HEADER(add,X-Flat)"] == "1"
        assert leg.variables["PJSIP_HEADER(add,X-Out)"] == "2"
        assert "PJSIP_HEADER(add,X-In)" not in leg.variables
        assert leg.variables["CAV_campaign"] == "x"
        assert leg.variables["C2C_CALL_ID"] == plan.call_id


def test_media_options() -> None:
    assert _plan().bridge_type == "mixing,proxy_media"
    assert _plan(bypass_media=True).bridge_type == "mixing"
    assert _plan().ignore_early_media is True
    assert _plan(media={"ignore_early_media": False}).ignore_early_media is False
    assert _plan(music_on_hold={"media_id": "jazz"}).moh_class == "jazz"
    assert _plan(music_on_hold={"media_id": ""}).moh_class is None


def test_caller_id_name_cannot_break_out_of_quotes() -> None:
    plan = _plan(name='Evil" <666> "x')
    assert plan.first.caller_id == '"Evil 666 x" <+4930123456>'


def test_kazoo_view_of_the_plan() -> None:
    view = _plan().kazoo_view("pbx.example")
    assert view["outbound_call_id"].startswith("c2c-")
    assert view["custom_channel_vars"]["from_uri"] == "1001@pbx.example"
    assert view["custom_channel_vars"]["request_uri"] == "+4930123456@pbx.example"
    assert view["outbound_caller_id_number"] == "+4930123456"
    assert view["outbound_callee_id_name"] == "1001"
    assert view["timeout"] == 30


def test_a_sip_uri_contact_is_dialled_as_a_uri() -> None:
    plan = build_plan(
        account_id="b" * 32, clicktocall=C2C, contact="sip:alice@203.0.113.9:5080",
        custom_application_vars={}, extension_endpoint="PJSIP/{extension}",
        contact_endpoint="PJSIP/{contact}@trunk", contact_uri_endpoint="PJSIP/trunk/{contact}",
    )
    # not PJSIP/sip:alice@203.0.113.9:5080@trunk, which Asterisk would take apart wrongly
    assert plan.second.endpoint == "PJSIP/trunk/sip:alice@203.0.113.9:5080"
    # the agent's phone shows the URI's user part as the caller's number
    assert plan.first.caller_id == '"Sales" <alice>'


def test_ringbacks_become_tones_ari_can_play() -> None:
    # ARI's play splits its media at commas: every stored form is played with | instead.
    cases = {
        "ring": "ring",
        "ring;tonezone=fr": "ring;tonezone=fr",
        "440+480/2000,0/4000": "440+480/2000|0/4000",
        "%(2000,4000,440,480)": "440+480/2000|0/4000",
        "%(1000,500,425)": "425/1000|0/500",
    }
    for stored, played in cases.items():
        assert _plan(ringback=stored).ringback == played
    assert _plan(ringback="").ringback is None


def test_a_call_from_a_phone_names_that_phone_as_its_extension() -> None:
    def plan(caller: str | None):  # type: ignore[no-untyped-def]
        return build_plan(
            account_id="b" * 32, clicktocall=C2C, contact="+4930123456",
            custom_application_vars={}, extension_endpoint="PJSIP/{extension}",
            contact_endpoint="PJSIP/{contact}@trunk", trigger="dialplan", extension=caller)

    assert plan("1002").extension == "1002"
    assert plan("1002").leg("contact").caller_id == '"1002" <1002>'
    # a number a phone could send but no extension could be: the click-to-call's own
    for odd in (None, "", "10 02", "a" * 65, "1002;x=1"):
        assert plan(odd).extension == "1001"
