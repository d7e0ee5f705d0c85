"""Identifier formats accepted at the edges (URLs, carrier messages, Twilio callbacks)."""

from __future__ import annotations

import re

#: Any carrier's call id as it appears in our URLs and records.
CALL_SID = re.compile(r"^[A-Za-z0-9_\-.:]{1,64}$")
#: Agent ids are what CARECOACH_AGENT_DIAL holds for now (`+E164`, `sip:user@host`, `client:name`).
AGENT = re.compile(r"^[A-Za-z0-9_\-.:+@]{1,128}$")
#: A real Twilio CallSid: what conference names and the coaching leg's parameters are built from.
TWILIO_CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
E164 = re.compile(r"^\+[0-9]{7,15}$")
