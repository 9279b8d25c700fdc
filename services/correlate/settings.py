"""Correlate settings (prefix ``VIGIE_``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from shared.settings import Settings


class CorrelateSettings(Settings):
    #: How late (seconds, event time) an event may arrive and still count.
    allowed_lateness_s: Annotated[int, Field(ge=0)] = 7 * 86400
    #: Window of the cross-agency target rule, in seconds (90 days).
    target_window_s: Annotated[int, Field(ge=1)] = 90 * 86400
