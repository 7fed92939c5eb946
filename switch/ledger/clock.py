"""The wall clock as the ledger and the engine see it: ``now()``, ``business_date()``,
``in_settlement_window()`` and ``tz``, from the program's business calendar (SPEC §6)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from switch.backoffice.timeutil import BusinessCalendar
from switch.config import ProgramConfig


class CalendarClock:
    def __init__(self, calendar: BusinessCalendar) -> None:
        self.calendar = calendar
        self.tz: ZoneInfo = calendar.tz

    @classmethod
    def from_config(cls, program: ProgramConfig) -> CalendarClock:
        return cls(BusinessCalendar.from_config(program))

    def now(self) -> datetime:
        return datetime.now(UTC).astimezone(self.tz)

    def business_date(self) -> date:
        return self.calendar.business_date(self.now())

    def in_settlement_window(self) -> bool:
        return self.calendar.in_settlement_window(self.now())
