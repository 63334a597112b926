"""The call plan: what Asterisk is asked to do for one click-to-call, decided up front.

Pure data, no I/O. Every id (call, channels, bridge) is chosen here, so the Stasis layer can
originate with them and recognise its own channels after a reconnect or a restart.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["extension", "contact"]

# Kazoo's rule: the extension leg sees the contact; the contact leg sees the extension.


@dataclass(frozen=True)
class Leg:
    role: Role
    endpoint: str
    channel_id: str
    caller_id_name: str
    caller_id_number: str
    variables: dict[str, str] = field(default_factory=dict)

    @property
    def caller_id(self) -> str:
        """ARI's `callerId`: `"name" <number>`; quotes and brackets are stripped from the
        name so it cannot break out of the quoted string."""
        name = "".join(c for c in self.caller_id_name if c not in '"\\<>')
        return f'"{name}" <{self.caller_id_number}>' if name else f"<{self.caller_id_number}>"


@dataclass(frozen=True)
class CallPlan:
    call_id: str
    account_id: str
    clicktocall_id: str
    contact: str
    extension: str
    first: Leg
    second: Leg
    bridge_id: str
    timeout: int
    bypass_media: bool
    ignore_early_media: bool
    moh_class: str | None
    ringback: str | None
    presence_id: str | None
    custom_application_vars: dict[str, str]

    @property
    def bridge_type(self) -> str:
        # proxy_media keeps RTP through Asterisk; without it Asterisk may bridge natively
        # (direct media between the phones when the endpoints allow it).
        return "mixing" if self.bypass_media else "mixing,proxy_media"

    def leg(self, role: Role) -> Leg:
        return self.first if self.first.role == role else self.second

    def kazoo_view(self, realm: str) -> dict[str, Any]:
        """The originate request in the shape Kazoo's non-blocking connect answers with."""
        ext, contact = self.leg("extension"), self.leg("contact")
        return {
            "application_data": {"route": self.contact},
            "application_name": "transfer",
            "continue_on_fail": True,
            "custom_application_vars": {"contact": self.contact,
                                        **self.custom_application_vars},
            "custom_channel_vars": {
                "account_id": self.account_id,
                "authorizing_id": self.clicktocall_id,
                "authorizing_type": "clicktocall",
                "from_uri": f"{self.extension}@{realm}",
                "request_uri": f"{self.contact}@{realm}",
                "retain_cid": True,
            },
            "dial_first": self.first.role,
            "endpoints": [{"route": leg.endpoint, "channel_id": leg.channel_id,
                           "role": leg.role} for leg in (self.first, self.second)],
            "ignore_early_media": self.ignore_early_media,
            "outbound_call_id": self.call_id,
            "outbound_callee_id_name": contact.caller_id_name,
            "outbound_callee_id_number": contact.caller_id_number,
            "outbound_caller_id_name": ext.caller_id_name,
            "outbound_caller_id_number": ext.caller_id_number,
            "timeout": self.timeout,
        }


def _headers(doc: dict[str, Any], direction: Literal["in", "out"]) -> dict[str, str]:
    """Flat custom_sip_headers apply to outbound INVITEs, like `out` (Kazoo's legacy form)."""
    headers = doc.get("custom_sip_headers") or {}
    flat = {k: v for k, v in headers.items() if k not in ("in", "out")}
    return {**flat, **headers.get(direction, {})} if direction == "out" else dict(
        headers.get("in", {}))


# What an extension may be (the schema's rule): a phone's number that is not is not used.
_EXTENSION = re.compile(r"[A-Za-z0-9+*#._-]{1,64}")
_KAZOO_TONE = re.compile(r"%\(([0-9]+),([0-9]+),([0-9]+(?:,[0-9]+)?)\)")


def asterisk_tone(ringback: str) -> str:
    """A stored ringback (schema-checked) as ARI's `tone:` playback takes it. Parts are
    joined by `|`, which Asterisk's tone player accepts as well as commas, because ARI's
    play splits its `media` parameter at commas. Kazoo's `%(on,off,f1[,f2])` becomes
    `f1+f2/on|0/off`."""
    kazoo = _KAZOO_TONE.fullmatch(ringback)
    if kazoo is not None:
        on, off, frequencies = kazoo.groups()
        return f"{frequencies.replace(',', '+')}/{on}|0/{off}"
    return ringback.replace(",", "|")


def _caller_number(contact: str) -> str:
    """The number the agent sees for a contact: a SIP URI's user part (`alice` of
    sip:alice@host), which is what a phone shows as a number; a number as it is."""
    if contact.startswith("sip:"):
        return contact[4:].split("@", 1)[0]
    return contact


def header_variables(headers: dict[str, str]) -> dict[str, str]:
    return {f"PJSIP_HEADER(add,{name})": value for name, value in headers.items()}


def build_plan(
    *,
    account_id: str,
    clicktocall: dict[str, Any],
    contact: str,
    custom_application_vars: dict[str, str],
    extension_endpoint: str,
    contact_endpoint: str,
    contact_uri_endpoint: str = "PJSIP/trunk/{contact}",
    call_id: str | None = None,
    trigger: str = "api",
    extension: str | None = None,
) -> CallPlan:
    """Turn a validated click-to-call and a normalised contact into a plan.

    `extension_endpoint` / `contact_endpoint` are dial-string templates such as
    `PJSIP/{extension}` and `PJSIP/{contact}@trunk`, and `contact_uri_endpoint` the one for
    a (whitelisted) `sip:` contact, such as `PJSIP/trunk/{contact}`; the values put into them
    have passed the schema's or the contact rules' character checks, so they cannot add to
    a dial string.

    `custom_sip_headers.out` (or the flat form) goes on every INVITE the app sends; for a call
    that came in from a phone (`trigger` "dialplan"), `in` is added too, `in` winning; the
    phone is then the extension, and `extension` its number, if it is a plain one."""
    c2c_id = clicktocall["id"]
    call_id = call_id or f"c2c-{c2c_id}-{secrets.token_hex(8)}"
    if extension is None or not _EXTENSION.fullmatch(extension):
        extension = clicktocall["extension"]
    variables = {
        "C2C_CALL_ID": call_id,
        "C2C_ID": c2c_id,
        "C2C_ACCOUNT_ID": account_id,
        **{f"CAV_{k}": v for k, v in custom_application_vars.items()},
    }
    if clicktocall.get("presence_id"):
        variables["C2C_PRESENCE_ID"] = clicktocall["presence_id"]
    headers = _headers(clicktocall, "out")
    if trigger == "dialplan":
        headers.update(_headers(clicktocall, "in"))
    outbound = header_variables(headers)
    extension_leg = Leg(
        role="extension",
        endpoint=extension_endpoint.format(extension=extension),
        channel_id=f"{call_id}-ext",
        caller_id_name=clicktocall["name"],
        caller_id_number=clicktocall.get("caller_id_number") or _caller_number(contact),
        variables={**variables, **outbound, "C2C_ROLE": "extension"},
    )
    contact_leg = Leg(
        role="contact",
        endpoint=(contact_uri_endpoint if contact.startswith("sip:")
                  else contact_endpoint).format(contact=contact),
        channel_id=f"{call_id}-contact",
        caller_id_name=clicktocall.get("outbound_callee_id_name") or extension,
        caller_id_number=clicktocall.get("outbound_callee_id_number") or extension,
        variables={**variables, **outbound, "C2C_ROLE": "contact"},
    )
    contact_first = clicktocall.get("dial_first") == "contact"
    moh = (clicktocall.get("music_on_hold") or {}).get("media_id") or None
    return CallPlan(
        call_id=call_id,
        account_id=account_id,
        clicktocall_id=c2c_id,
        contact=contact,
        extension=extension,
        first=contact_leg if contact_first else extension_leg,
        second=extension_leg if contact_first else contact_leg,
        bridge_id=f"{call_id}-bridge",
        timeout=int(clicktocall.get("timeout", 30)),
        bypass_media=bool(clicktocall.get("bypass_media", False)),
        ignore_early_media=(clicktocall.get("media") or {}).get("ignore_early_media", True)
        is not False,
        moh_class=moh,
        ringback=asterisk_tone(clicktocall["ringback"]) if clicktocall.get("ringback") else None,
        presence_id=clicktocall.get("presence_id") or None,
        custom_application_vars=dict(custom_application_vars),
    )


def adopted_plan(
    *, call_id: str, account_id: str, clicktocall_id: str, item: dict[str, Any],
    resources: list[str],
) -> CallPlan:
    """The plan of a bridged call taken over from a gone instance: only what following it
    to its end needs (its channels and bridge, as its in-flight row lists them: first leg,
    second leg, bridge), since nothing is dialled any more."""
    first_role: Role = "contact" if item.get("dial_first") == "contact" else "extension"
    second_role: Role = "extension" if first_role == "contact" else "contact"
    first_channel, second_channel, bridge_id = resources

    def leg(role: Role, channel_id: str) -> Leg:
        return Leg(role=role, endpoint="", channel_id=channel_id, caller_id_name="",
                   caller_id_number="")

    return CallPlan(
        call_id=call_id, account_id=account_id, clicktocall_id=clicktocall_id,
        contact=item.get("contact", ""), extension=item.get("extension", ""),
        first=leg(first_role, first_channel), second=leg(second_role, second_channel),
        bridge_id=bridge_id, timeout=0, bypass_media=False, ignore_early_media=True,
        moh_class=None, ringback=None, presence_id=None, custom_application_vars={},
    )
