"""Business calendar of SPEC §6 (pure): cut-over, settlement window, business date of an instant.

The business date changes at ``cutover`` local time: an instant at or after the cut-over belongs to the next
calendar date. The settlement window (``23:20-00:30`` by default) may wrap midnight.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from switch.config import ProgramConfig, parse_hhmm, parse_window


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    tz: ZoneInfo
    cutover: time
    window: tuple[time, time]

    @classmethod
    def from_config(cls, program: ProgramConfig) -> BusinessCalendar:
        return cls(
            tz=ZoneInfo(program.timezone),
            cutover=parse_hhmm(program.cutover, "program.cutover"),
            window=parse_window(program.settlement_window, "program.settlement_window"),
        )

    def local(self, ts: datetime) -> datetime:
        return ts.astimezone(self.tz)

    def business_date(self, ts: datetime) -> date:
        """Calendar business date of ``ts`` by the clock (a manual ``day close`` may be ahead of it)."""
        loc = self.local(ts)
        d = loc.date()
        return d + timedelta(days=1) if loc.time() >= self.cutover else d

    def in_settlement_window(self, ts: datetime) -> bool:
        t = self.local(ts).time()
        start, end = self.window
        if start <= end:
            return start <= t < end
        return t >= start or t < end
