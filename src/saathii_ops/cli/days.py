"""The instants a run may be "at" (`--now`, badge dates): a year of margin on either side
of them keeps every limit of the settings computable in Python's datetimes (years 1 to
9999)."""

from datetime import date

EARLIEST_DAY = date(1970, 1, 1)
LATEST_DAY = date(9998, 12, 31)
