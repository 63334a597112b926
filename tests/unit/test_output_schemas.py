"""schemas/history_item.json and schemas/call_status.json describe what the code produces:
the items and statuses of real `Call`s (run against the scripted ARI of the causes test)
validate against them, both with the service's own validator and with an independent
draft-07 one, and the documents still refuse what the code never sends."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from jsonschema import Draft7Validator
from referencing import Registry, Resource

from c2c_ari.domain.calls import ended
from c2c_ari.domain.history import cut_short, history_item
from c2c_ari.domain.plan import build_plan
from c2c_ari.schemas import default_validator, load_schemas
from c2c_ari.stasis.call import Call, CallOrigin
from tests.unit.test_stasis_call_causes import BRIDGED, NOT_ANSWERED, Case, FakeAri, _name

SCHEMAS = load_schemas()
_REGISTRY = Registry().with_resources(
    (name, Resource.from_contents(doc)) for name, doc in SCHEMAS.items())


def assert_valid(instance: Any, schema: str) -> None:
    assert default_validator().errors(instance, schema) == {}, instance
    Draft7Validator(SCHEMAS[schema], registry=_REGISTRY).validate(instance)


def refused(instance: Any, schema: str) -> bool:
    service = default_validator().errors(instance, schema) != {}
    independent = not Draft7Validator(SCHEMAS[schema], registry=_REGISTRY).is_valid(instance)
    assert service == independent, instance
    return service


def _plan(dial_first: str = "extension") -> Any:
    return build_plan(
        account_id="a" * 32,
        clicktocall={"id": "b" * 32, "name": "Sales", "extension": "1001",
                     "dial_first": dial_first},
        contact="+15551234567", custom_application_vars={},
        extension_endpoint="PJSIP/{extension}", contact_endpoint="PJSIP/{contact}@trunk",
    )


@pytest.mark.parametrize("name", ["history_item", "call_status"])
def test_documents_are_draft7_and_every_property_is_labelled(name: str) -> None:
    schema = SCHEMAS[name]
    Draft7Validator.check_schema(schema)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["$id"] == name and schema["title"] and schema["description"]

    def walk(node: dict[str, Any], where: str) -> None:
        for key, sub in {**node.get("properties", {}), **node.get("definitions", {})}.items():
            assert sub.get("title") and sub.get("description"), f"{where}.{key}"
            walk(sub, f"{where}.{key}")

    walk(schema, name)


ORIGINS = [CallOrigin("203.0.113.5", authenticated=False, trigger="api"),
           CallOrigin(None, authenticated=True, trigger="dialplan")]
EXTRAS: list[dict[str, Any]] = [
    {"client_ip": o.client_ip, "authenticated": o.authenticated, "trigger": o.trigger}
    for o in ORIGINS]


@pytest.mark.parametrize("origin", ORIGINS, ids=["api", "dialplan"])
@pytest.mark.parametrize("case", NOT_ANSWERED + BRIDGED, ids=_name)
async def test_items_and_statuses_of_real_calls_validate(case: Case,
                                                         origin: CallOrigin) -> None:
    plan = _plan(case.dial_first)
    ari = FakeAri(plan, case)
    call = Call(plan, ari, origin=origin)  # type: ignore[arg-type]
    ari.call = call
    watched = call.watch()
    assert_valid(call.provisional_item(), "history_item")  # the in-flight record's item
    async with asyncio.timeout(5):
        item = await call.run()

    assert_valid(item, "history_item")
    # What a restart or a failed task turns the in-flight record into (stasis/app.py).
    assert_valid(cut_short(call.provisional_item(), "SERVICE_RESTART", time.time() + 5),
                 "history_item")
    assert_valid({**call.provisional_item(), "result": "error", "cause": "INTERNAL_ERROR"},
                 "history_item")
    statuses = [watched.get_nowait() for _ in range(watched.qsize())]
    assert statuses[0]["state"] == "dialing_first" and statuses[-1]["state"] == "ended"
    for status in statuses:
        assert_valid(status, "call_status")
    # What GET .../calls/{id} answers once the call is over: from the stored item.
    assert_valid(ended(item), "call_status")
    assert_valid({**statuses[0], "call_token": "0" * 64}, "call_status")  # listCalls' items


def test_history_item_built_directly_validates() -> None:
    base = {"call_id": "c2c-" + "b" * 32 + "-0123456789abcdef", "contact": "+4930123456",
            "started": 1_700_000_000.5, "cause": None, "failed_leg": None,
            "hangup_cause": None, "hangup_cause_code": None}
    items = [
        history_item(**base, answered=None, ended=None, result="error",  # type: ignore[arg-type]
                     extra={}),
        history_item(**{**base, "hangup_cause": "NORMAL_CLEARING",  # type: ignore[arg-type]
                        "hangup_cause_code": 16},
                     answered=1_700_000_003.25, ended=1_700_000_063.0, result="success",
                     extra={**EXTRAS[0], "dial_first": "contact", "extension": "1001"}),
        history_item(**{**base, "cause": "CHANNEL_LOST", "failed_leg": "contact",  # type: ignore[arg-type]
                        "hangup_cause": "CHANNEL_LOST"},
                     answered=None, ended=1_700_000_009.0, result="error", extra=EXTRAS[1]),
    ]
    for item in items:
        assert_valid(item, "history_item")
    assert items[1]["talk_duration"] == 59.75


def test_the_documents_refuse_what_the_code_never_sends() -> None:
    item = {"timestamp": 63_900_000_000, "call_id": "c2c-x-y", "contact": "+4930123456",
            "result": "success"}
    assert_valid(item, "history_item")
    assert refused({**item, "result": "maybe"}, "history_item")
    assert refused({**item, "timestamp": 63_900_000_000.5}, "history_item")
    assert refused({**item, "failed_leg": "agent"}, "history_item")
    assert refused({k: v for k, v in item.items() if k != "call_id"}, "history_item")

    live: dict[str, Any] = {"call_id": "c2c-x-y", "contact": "+4930123456", "extension": "1001",
            "dial_first": "extension", "timestamp": 63_900_000_000, "state": "dialing_first",
            "legs": {"extension": {"channel_id": "c2c-x-y-ext", "state": "Down"},
                     "contact": {"channel_id": "c2c-x-y-contact", "state": "Down"}}}
    assert_valid(live, "call_status")
    assert refused({k: v for k, v in live.items() if k != "legs"}, "call_status")
    assert refused({**live, "state": "ringing"}, "call_status")
    assert refused({**live, "legs": {**live["legs"], "agent": live["legs"]["contact"]}},
                   "call_status")
    assert refused({**live, "state": "ended"}, "call_status")  # ended: needs its result
    assert_valid(ended(item), "call_status")
