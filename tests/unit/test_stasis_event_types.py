"""The Stasis app asks Asterisk only for the event types in `EVENT_TYPES` (ARI's event
filter): an event type the call flow waits for but that is missing there would never come."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from c2c_ari.ari import AriClient
from c2c_ari.stasis import app, call
from c2c_ari.stasis.call import EVENT_TYPES

# ARI event types are CamelCase names such as StasisStart or ChannelDestroyed (the commands
# the app sends a call are typed objects, not event names).
ARI_EVENT = re.compile(r"(Stasis|Channel|Bridge|Playback|Dial|Application)[A-Z]?\w*")


def _names_in(module: object) -> set[str]:
    tree = ast.parse(Path(module.__file__).read_text())  # type: ignore[attr-defined]
    return {node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and ARI_EVENT.fullmatch(node.value)}


def test_every_event_type_the_call_flow_names_is_asked_for() -> None:
    named = _names_in(call) | _names_in(app)
    assert named, "no event type found: has the pattern gone stale?"
    assert named <= EVENT_TYPES, f"not in EVENT_TYPES: {sorted(named - EVENT_TYPES)}"


def test_the_app_asks_for_them() -> None:
    ari = AriClient("http://127.0.0.1:8088", "u", "p", "c2c-ari")
    stasis = app.StasisApp(ari, None,  # type: ignore[arg-type]
                           extension_endpoint="PJSIP/{extension}",
                           contact_endpoint="PJSIP/{contact}@trunk")
    assert stasis.events._event_types == sorted(EVENT_TYPES)
