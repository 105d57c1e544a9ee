"""Running the triage service: settings and the receiver + worker + API together."""

from __future__ import annotations

from radiolens.runtime.service import TriageService
from radiolens.runtime.settings import ServiceSettings, load_settings, read_or_create_token

__all__ = ["ServiceSettings", "TriageService", "load_settings", "read_or_create_token"]
