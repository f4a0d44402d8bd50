"""Make relative dates absolute against the time a message was said.

"I moved here last week" means nothing a month later; "in the week of 1 May 2023" still does.
Facts are rewritten before they are stored, and their `valid_from` comes from the start of the
resolved interval. Only phrases with one fair reading are resolved; the rules for the ones
people read two ways are fixed here:

- Weeks start on Monday. "this week/weekend/Friday" is in the anchor's week, "next ..." in the
  week after it. "last Friday" is the most recent Friday before the anchor's day; "last
  weekend" the one before the anchor's week.
- Seasons are northern-hemisphere meteorological ones (spring March-May, summer June-August,
  autumn/fall September-November, winter December-February, named by the year it starts).
  Seasons and named months share one rule: "last X" is the latest X that has ended by the
  anchor, "next X" the first that starts after it, "this X" the one the anchor is in, else
  the one starting in the anchor's year. So "last spring" said in May 2023 is spring 2022.
- "N weeks ago" gives the week it falls in, "N months ago" the month, "N years ago" the year.
- Vague amounts stay vague but dated: "a few days ago" becomes "a few days before 8 May 2023";
  its `start` takes "a few" as 3 and "several" as 5. "the other day" reads as "a few days ago".

Absolute dates are never touched; "the last week of May" is not "last week" and stays as is.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from .schema import DateResolution

MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_SEASON_START = {"spring": 3, "summer": 6, "autumn": 9, "fall": 9, "winter": 12}
_COUNTS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
           "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "a couple of": 2, "couple of": 2}
_VAGUE = {"a few": 3, "few": 3, "several": 5}
_PARTS = r"(?:\s+(?P<part>morning|afternoon|evening|night))?"
_COUNT = r"(?P<n>\d{1,3}|a couple of|couple of|a few|few|several|" + "|".join(_COUNTS) + ")"
_UNIT = r"(?P<unit>day|week|fortnight|month|year)s?"
_NOT_AFTER_THE = r"(?<!\bthe\s)"  # "the last week of May", "the next day": not about the anchor
# Before these words a date reads as a noun: "since last week" -> "since the week of ...".
_PREPOSITION = re.compile(
    r"\b(?:since|until|till|by|before|after|from|during|of|for|through|to|around|about|between|on|in|at)\s+$",
    re.IGNORECASE,
)
_POSSESSIVE = re.compile(r"['’]s\b")


@dataclass(frozen=True)
class _Span:
    """A resolved interval and how to say it as an adverb ("on 7 May 2023") or noun ("7 May 2023")."""

    start: date
    adverb: str
    noun: str


def _day_name(day: date) -> str:
    return f"{day.day} {MONTHS[day.month - 1].capitalize()} {day.year}"


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _day(day: date, part: str | None = None) -> _Span:
    if part:
        noun = f"the {part} of {_day_name(day)}"
        return _Span(day, f"on {noun}", noun)
    return _Span(day, f"on {_day_name(day)}", _day_name(day))


def _week(day: date) -> _Span:
    monday = _monday(day)
    return _Span(monday, f"in the week of {_day_name(monday)}", f"the week of {_day_name(monday)}")


def _weekend(saturday: date) -> _Span:
    noun = f"the weekend of {_day_name(saturday)}"
    return _Span(saturday, f"on {noun}", noun)


def _month(day: date) -> _Span:
    first = day.replace(day=1)
    noun = f"{MONTHS[first.month - 1].capitalize()} {first.year}"
    return _Span(first, f"in {noun}", noun)


def _year(year: int) -> _Span:
    return _Span(date(year, 1, 1), f"in {year}", str(year))


def _vague(amount: str, unit: str, anchor: date, forward: bool) -> _Span:
    count = _VAGUE[amount.lower()]
    step = {"day": 1, "week": 7, "fortnight": 14}.get(unit)
    if step:
        start = anchor + timedelta(days=count * step * (1 if forward else -1))
    elif unit == "month":
        start = _add_months(anchor, count if forward else -count)
    else:
        start = date(anchor.year + (count if forward else -count), 1, 1)
    amount = "a few" if amount.lower() == "few" else amount.lower()
    text = f"{amount} {unit}s {'after' if forward else 'before'} {_day_name(anchor)}"
    return _Span(start, text, text)


def _counted(n: int, unit: str, anchor: date) -> _Span:
    """The day, week, month or year that lies n units from the anchor (n < 0: in the past)."""
    if unit == "day":
        return _day(anchor + timedelta(days=n))
    if unit in ("week", "fortnight"):
        return _week(anchor + timedelta(weeks=n * (2 if unit == "fortnight" else 1)))
    if unit == "month":
        return _month(_add_months(anchor, n))
    return _year(anchor.year + n)


def _named_period(name: str, which: str, anchor: date) -> _Span:
    """A season or a named month, chosen by the last/this/next rule in the module docstring."""
    name = name.lower()
    first_month, length = (_SEASON_START[name], 3) if name in _SEASON_START else (MONTHS.index(name) + 1, 1)

    def bounds(year: int) -> tuple[date, date]:
        start = date(year, first_month, 1)
        return start, _add_months(start, length)

    years = range(anchor.year - 2, anchor.year + 3)
    if which == "last":
        year = max(y for y in years if bounds(y)[1] <= anchor)
    elif which == "next":
        year = min(y for y in years if bounds(y)[0] > anchor)
    else:
        year = next((y for y in years if bounds(y)[0] <= anchor < bounds(y)[1]), anchor.year)
    if name in MONTHS:
        return _month(date(year, first_month, 1))
    label = f"{name} {year}-{(year + 1) % 100:02d}" if name == "winter" else f"{name} {year}"
    return _Span(bounds(year)[0], f"in {label}", label)


def _count(word: str) -> int:
    word = word.lower()
    return int(word) if word.isdigit() else _COUNTS[word]


def _ago_or_ahead(m: re.Match[str], anchor: date, forward: bool) -> _Span:
    amount, unit = " ".join(m["n"].lower().split()), m["unit"].lower()
    if amount in _VAGUE:
        return _vague(amount, unit, anchor, forward)
    n = _count(amount)
    return _counted(n if forward else -n, unit, anchor)


def _relative_day(m: re.Match[str], anchor: date) -> _Span:
    offset = {"yesterday": -1, "today": 0, "tomorrow": 1}[m["word"].lower()]
    part = m.groupdict().get("part")
    return _day(anchor + timedelta(days=offset), part and part.lower())


def _calendar_unit(m: re.Match[str], anchor: date) -> _Span:
    step = {"last": -1, "this": 0, "next": 1}[m["which"].lower()]
    unit = m["unit"].lower()
    if unit == "week":
        return _week(anchor + timedelta(weeks=step))
    if unit == "weekend":
        return _weekend(_monday(anchor) + timedelta(days=5 + 7 * step))
    if unit == "month":
        return _month(_add_months(anchor, step))
    return _year(anchor.year + step)


def _weekday(m: re.Match[str], anchor: date) -> _Span:
    which, target = m["which"].lower(), WEEKDAYS.index(m["day"].lower())
    part = m["part"] and m["part"].lower()
    if which == "last":
        return _day(anchor - timedelta(days=(anchor.weekday() - target - 1) % 7 + 1), part)
    return _day(_monday(anchor) + timedelta(days=target + (7 if which == "next" else 0)), part)


def _named(m: re.Match[str], anchor: date) -> _Span | None:
    if m["name"].lower() == "may" and not m["name"][0].isupper():  # "this may be": not the month
        return None
    return _named_period(m["name"], m["which"].lower(), anchor)


_Resolver = Callable[[re.Match[str], date], _Span | None]
_RULES: tuple[tuple[re.Pattern[str], _Resolver], ...] = tuple(
    (re.compile(r"\b" + pattern.replace(" ", r"\s+") + r"\b", re.IGNORECASE), resolve) for pattern, resolve in (
        (r"the day before yesterday", lambda m, a: _day(a - timedelta(days=2))),
        (r"the day after tomorrow", lambda m, a: _day(a + timedelta(days=2))),
        (r"(?P<word>yesterday|tomorrow)" + _PARTS, _relative_day),
        (r"(?P<word>today)", _relative_day),
        (r"tonight", lambda m, a: _day(a, "night")),
        (r"last night", lambda m, a: _day(a - timedelta(days=1), "night")),
        (r"this (?P<part>morning|afternoon|evening)", lambda m, a: _day(a, m["part"].lower())),
        (r"the other day", lambda m, a: _vague("a few", "day", a, forward=False)),
        (_NOT_AFTER_THE + r"(?P<which>last|this|next) (?P<unit>week|weekend|month|year)", _calendar_unit),
        (_NOT_AFTER_THE + r"(?P<which>last|this|next) (?P<day>" + "|".join(WEEKDAYS) + ")" + _PARTS, _weekday),
        (_NOT_AFTER_THE + r"(?P<which>last|this|next) (?P<name>"
         + "|".join((*_SEASON_START, *MONTHS)) + ")", _named),
        (_COUNT + r" " + _UNIT + r" ago", lambda m, a: _ago_or_ahead(m, a, forward=False)),
        (_COUNT + r" " + _UNIT + r" from now", lambda m, a: _ago_or_ahead(m, a, forward=True)),
        (r"in " + _COUNT + r" " + _UNIT + r"(?:['’]s? time)?", lambda m, a: _ago_or_ahead(m, a, forward=True)),
    )
)


def _phrasing(text: str, m: re.Match[str], span: _Span) -> tuple[str, int]:
    """The replacement for a match and where it ends (a possessive "'s" is taken along)."""
    end = m.end()
    if possessive := _POSSESSIVE.match(text, end):
        words, end = f"{span.noun}'s", possessive.end()
    elif _PREPOSITION.search(text, max(0, m.start() - 10), m.start()):
        words = span.noun
    else:
        words = span.adverb
    if m.group()[0].isupper():
        words = words[0].upper() + words[1:]
    return words, end


def resolve_relative_dates(text: str, anchor: datetime) -> DateResolution:
    """Rewrite relative date phrases in `text` as absolute ones, as said at `anchor`."""
    tz = anchor.tzinfo or UTC  # naive times are UTC, as in the memory models
    day = anchor.date()
    found: list[tuple[re.Match[str], _Span]] = []
    for pattern, resolve in _RULES:
        for m in pattern.finditer(text):
            if span := resolve(m, day):
                found.append((m, span))
    found.sort(key=lambda item: (item[0].start(), -item[0].end()))  # leftmost, then longest
    out: list[str] = []
    phrases: list[str] = []
    starts: list[date] = []
    position = 0
    for m, span in found:
        if m.start() < position:
            continue  # inside a longer phrase already resolved
        words, end = _phrasing(text, m, span)
        out += [text[position:m.start()], words]
        phrases.append(m.group())
        starts.append(span.start)
        position = end
    out.append(text[position:])
    start = datetime.combine(min(starts), time(), tzinfo=tz) if starts else None
    return DateResolution(text="".join(out), start=start, phrases=phrases)
