"""Relative dates made absolute against the time a message was said."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from personagraph.graphs.reflection.dates import resolve_relative_dates

MON_8_MAY_2023 = datetime(2023, 5, 8, 14, 30, tzinfo=UTC)
SAT_13_MAY_2023 = datetime(2023, 5, 13, 10, 0, tzinfo=UTC)
NEW_YEAR_2024 = datetime(2024, 1, 1, 9, 0, tzinfo=UTC)  # a Monday
END_OF_MARCH = datetime(2023, 3, 31, 12, 0, tzinfo=UTC)  # a Friday
LEAP_DAY_AFTER = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)  # 2024 is a leap year
NON_LEAP_DAY_AFTER = datetime(2023, 3, 1, 12, 0, tzinfo=UTC)
JAN_2023 = datetime(2023, 1, 15, 12, 0, tzinfo=UTC)
DEC_2023 = datetime(2023, 12, 20, 12, 0, tzinfo=UTC)
AUG_2023 = datetime(2023, 8, 10, 12, 0, tzinfo=UTC)

CASES = [
    # (text, anchor, expected text, expected start date)
    ("I went yesterday", MON_8_MAY_2023, "I went on 7 May 2023", (2023, 5, 7)),
    ("Yesterday was fun", MON_8_MAY_2023, "On 7 May 2023 was fun", (2023, 5, 7)),
    ("yesterday's game", MON_8_MAY_2023, "7 May 2023's game", (2023, 5, 7)),
    ("I'm tired today", MON_8_MAY_2023, "I'm tired on 8 May 2023", (2023, 5, 8)),
    ("dinner tonight", MON_8_MAY_2023, "dinner on the night of 8 May 2023", (2023, 5, 8)),
    ("I ran this morning", MON_8_MAY_2023, "I ran on the morning of 8 May 2023", (2023, 5, 8)),
    ("we met last night", MON_8_MAY_2023, "we met on the night of 7 May 2023", (2023, 5, 7)),
    ("see you tomorrow", MON_8_MAY_2023, "see you on 9 May 2023", (2023, 5, 9)),
    ("tomorrow morning", MON_8_MAY_2023, "on the morning of 9 May 2023", (2023, 5, 9)),
    ("the day before yesterday", MON_8_MAY_2023, "on 6 May 2023", (2023, 5, 6)),
    ("the day after tomorrow", MON_8_MAY_2023, "on 10 May 2023", (2023, 5, 10)),
    ("I moved last week", MON_8_MAY_2023, "I moved in the week of 1 May 2023", (2023, 5, 1)),
    ("busy this week", SAT_13_MAY_2023, "busy in the week of 8 May 2023", (2023, 5, 8)),
    ("next week", SAT_13_MAY_2023, "in the week of 15 May 2023", (2023, 5, 15)),
    ("since last week", MON_8_MAY_2023, "since the week of 1 May 2023", (2023, 5, 1)),
    ("next month", MON_8_MAY_2023, "in June 2023", (2023, 6, 1)),
    ("last month", MON_8_MAY_2023, "in April 2023", (2023, 4, 1)),
    ("last year", MON_8_MAY_2023, "in 2022", (2022, 1, 1)),
    ("next year", MON_8_MAY_2023, "in 2024", (2024, 1, 1)),
    ("until next month", MON_8_MAY_2023, "until June 2023", (2023, 6, 1)),
    ("last Friday", MON_8_MAY_2023, "on 5 May 2023", (2023, 5, 5)),
    ("last Monday", MON_8_MAY_2023, "on 1 May 2023", (2023, 5, 1)),
    ("this Friday", MON_8_MAY_2023, "on 12 May 2023", (2023, 5, 12)),
    ("next Friday", MON_8_MAY_2023, "on 19 May 2023", (2023, 5, 19)),
    ("last Friday night", MON_8_MAY_2023, "on the night of 5 May 2023", (2023, 5, 5)),
    ("last weekend", MON_8_MAY_2023, "on the weekend of 6 May 2023", (2023, 5, 6)),
    ("this weekend", MON_8_MAY_2023, "on the weekend of 13 May 2023", (2023, 5, 13)),
    ("next weekend", MON_8_MAY_2023, "on the weekend of 20 May 2023", (2023, 5, 20)),
    ("last weekend", SAT_13_MAY_2023, "on the weekend of 6 May 2023", (2023, 5, 6)),
    ("two days ago", MON_8_MAY_2023, "on 6 May 2023", (2023, 5, 6)),
    ("a couple of days ago", MON_8_MAY_2023, "on 6 May 2023", (2023, 5, 6)),
    ("3 weeks ago", MON_8_MAY_2023, "in the week of 17 April 2023", (2023, 4, 17)),
    ("a month ago", MON_8_MAY_2023, "in April 2023", (2023, 4, 1)),
    ("two years ago", MON_8_MAY_2023, "in 2021", (2021, 1, 1)),
    ("a few days ago", MON_8_MAY_2023, "a few days before 8 May 2023", (2023, 5, 5)),
    ("several weeks ago", MON_8_MAY_2023, "several weeks before 8 May 2023", (2023, 4, 3)),
    ("the other day", MON_8_MAY_2023, "a few days before 8 May 2023", (2023, 5, 5)),
    ("in 2 weeks", MON_8_MAY_2023, "in the week of 22 May 2023", (2023, 5, 22)),
    ("in three days", MON_8_MAY_2023, "on 11 May 2023", (2023, 5, 11)),
    ("in a week's time", MON_8_MAY_2023, "in the week of 15 May 2023", (2023, 5, 15)),
    ("two weeks from now", MON_8_MAY_2023, "in the week of 22 May 2023", (2023, 5, 22)),
    ("in a few days", MON_8_MAY_2023, "a few days after 8 May 2023", (2023, 5, 11)),
    ("last spring", MON_8_MAY_2023, "in spring 2022", (2022, 3, 1)),  # spring 2023 is not over yet
    ("last spring", AUG_2023, "in spring 2023", (2023, 3, 1)),
    ("this summer", MON_8_MAY_2023, "in summer 2023", (2023, 6, 1)),
    ("next summer", MON_8_MAY_2023, "in summer 2023", (2023, 6, 1)),
    ("last summer", DEC_2023, "in summer 2023", (2023, 6, 1)),
    ("next winter", MON_8_MAY_2023, "in winter 2023-24", (2023, 12, 1)),
    ("this winter", JAN_2023, "in winter 2022-23", (2022, 12, 1)),
    ("last autumn", JAN_2023, "in autumn 2022", (2022, 9, 1)),
    ("last fall", JAN_2023, "in fall 2022", (2022, 9, 1)),
    ("next March", MON_8_MAY_2023, "in March 2024", (2024, 3, 1)),
    ("last March", MON_8_MAY_2023, "in March 2023", (2023, 3, 1)),
    ("this May", MON_8_MAY_2023, "in May 2023", (2023, 5, 1)),
    # month and year boundaries
    ("yesterday", NEW_YEAR_2024, "on 31 December 2023", (2023, 12, 31)),
    ("last month", NEW_YEAR_2024, "in December 2023", (2023, 12, 1)),
    ("last week", NEW_YEAR_2024, "in the week of 25 December 2023", (2023, 12, 25)),
    ("last year", NEW_YEAR_2024, "in 2023", (2023, 1, 1)),
    ("last Sunday", NEW_YEAR_2024, "on 31 December 2023", (2023, 12, 31)),
    ("next month", END_OF_MARCH, "in April 2023", (2023, 4, 1)),
    ("tomorrow", END_OF_MARCH, "on 1 April 2023", (2023, 4, 1)),
    ("a month ago", END_OF_MARCH, "in February 2023", (2023, 2, 1)),
    ("next month", DEC_2023, "in January 2024", (2024, 1, 1)),
    ("yesterday", LEAP_DAY_AFTER, "on 29 February 2024", (2024, 2, 29)),
    ("yesterday", NON_LEAP_DAY_AFTER, "on 28 February 2023", (2023, 2, 28)),
    ("a year ago", LEAP_DAY_AFTER, "in 2023", (2023, 1, 1)),
    ("last winter", LEAP_DAY_AFTER, "in winter 2023-24", (2023, 12, 1)),
]


@pytest.mark.parametrize(("text", "anchor", "expected", "start"), CASES)
def test_resolves(text: str, anchor: datetime, expected: str, start: tuple[int, int, int]) -> None:
    resolved = resolve_relative_dates(text, anchor)
    assert resolved.text == expected
    assert resolved.start == datetime(*start, tzinfo=UTC)
    assert resolved.phrases


@pytest.mark.parametrize("text", [
    "Todayland is a theme park", "I met him on 7 May 2023", "in 2023", "the last week of May",
    "the next day we left", "this may be hard", "I like the other one", "Yesterdays is a song",
    "for two weeks", "Last of Us is great", "",
])
def test_leaves_alone(text: str) -> None:
    resolved = resolve_relative_dates(text, MON_8_MAY_2023)
    assert resolved.text == text
    assert resolved.start is None
    assert resolved.phrases == []


def test_case_insensitive_and_all_phrases_reported() -> None:
    resolved = resolve_relative_dates("YESTERDAY I booked it for NEXT FRIDAY", MON_8_MAY_2023)
    assert resolved.text == "On 7 May 2023 I booked it for 19 May 2023"
    assert resolved.phrases == ["YESTERDAY", "NEXT FRIDAY"]


def test_start_is_the_earliest_interval() -> None:
    resolved = resolve_relative_dates("Tomorrow I'll tell you about last summer", MON_8_MAY_2023)
    assert resolved.start == datetime(2022, 6, 1, tzinfo=UTC)
    assert resolved.text == "On 9 May 2023 I'll tell you about summer 2022"


def test_start_keeps_the_anchors_timezone_and_local_date() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    anchor = datetime(2023, 5, 8, 1, 0, tzinfo=tokyo)  # still 7 May in UTC
    resolved = resolve_relative_dates("yesterday", anchor)
    assert resolved.text == "on 7 May 2023"
    assert resolved.start == datetime(2023, 5, 7, tzinfo=tokyo)
    assert resolved.start.utcoffset() == timedelta(hours=9)
    fixed = resolve_relative_dates("today", datetime(2023, 5, 8, 23, tzinfo=timezone(timedelta(hours=-5))))
    assert fixed.text == "on 8 May 2023"


def test_naive_anchor_is_utc() -> None:
    assert resolve_relative_dates("today", datetime(2023, 5, 8, 12)).start == datetime(2023, 5, 8, tzinfo=UTC)


def test_several_phrases_in_one_text() -> None:
    resolved = resolve_relative_dates("I moved here last month and start work next week.", MON_8_MAY_2023)
    assert resolved.text == "I moved here in April 2023 and start work in the week of 15 May 2023."
    assert resolved.phrases == ["last month", "next week"]


def test_spacing_and_line_breaks_inside_a_phrase() -> None:
    resolved = resolve_relative_dates("last  week and a couple  of days ago, Next\nMonth", MON_8_MAY_2023)
    assert resolved.text == "in the week of 1 May 2023 and on 6 May 2023, In June 2023"
