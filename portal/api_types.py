"""Types of API inputs that the database bounds: row ids and times (pydantic/FastAPI annotations).

An id past the databases' 64-bit integers, or a time that cannot be shifted by a window or stored, is answered with
a 422 that names the parameter rather than a 500 from the driver.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator, Field

from core.db import DB_INT_MAX

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def utc_time(value: datetime) -> datetime:
    """``value`` in UTC (a naive time is taken as UTC); ValueError outside 1970–2200."""
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if not EARLIEST <= utc < LATEST:
        raise ValueError(f"time {value.isoformat()} is outside 1970-01-01 … 2200-01-01 / 时间超出范围")
    return utc


RowId = Annotated[int, Path(ge=1, le=DB_INT_MAX)]  # a path parameter naming a stored row
RowIdField = Annotated[int, Field(ge=1, le=DB_INT_MAX)]  # a body field naming a stored row
Offset = Annotated[int, Query(ge=0, le=DB_INT_MAX)]  # a query parameter counting rows to skip
UtcTime = Annotated[datetime, AfterValidator(utc_time)]  # a body field holding a time: stored in UTC
