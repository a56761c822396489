"""The pure schedule decision: due times, deadlines, DST, concurrency policies."""

from __future__ import annotations

import datetime as dt

import pytest

from flux.k8s.schedules import (
    MAX_RUN_NAME,
    TOO_MANY_MISSED,
    Cron,
    Decision,
    Due,
    ScheduleError,
    Skip,
    decide,
    due,
    missed_beyond_deadline,
    parse,
    problems,
    run_name,
    scheduled_condition,
)
from flux.k8s.states import ConcurrencyPolicy

UTC = dt.UTC


def at(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def decision(
    cron: Cron,
    found: Due | None,
    *,
    policy: ConcurrencyPolicy = ConcurrencyPolicy.ALLOW,
    suspend: bool = False,
    unfinished: tuple[str, ...] = (),
    last: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> Decision:
    now = now or at(2026, 1, 1, 12, 0, 30)
    return decide(
        cron,
        workflow="wf",
        schedule="s",
        policy=policy,
        suspend=suspend,
        last=last,
        found=found,
        unfinished=unfinished,
        now=now,
    )


# -- parsing -------------------------------------------------------------------


@pytest.mark.parametrize("macro", ["@hourly", "@daily", "@weekly", "@monthly", "@yearly"])
def test_macros_are_five_fields(macro: str) -> None:
    cron = parse(macro)
    assert cron.after(at(2026, 1, 1, 0, 30)).minute == 0


@pytest.mark.parametrize(
    ("cron", "zone", "says"),
    [
        ("61 * * * *", None, "Bad minute"),
        ("* * * *", None, "Wrong number of fields"),
        ("@reboot", None, "unknown macro"),
        ("0 0 31 2 *", None, "cron"),
        ("* * * * *", "Mars/Olympus_Mons", "unknown time zone"),
        ("* * * * *", "../etc/passwd", "unknown time zone"),
    ],
)
def test_bad_expressions_and_zones_are_refused_with_a_reason(
    cron: str, zone: str | None, says: str
) -> None:
    with pytest.raises(ScheduleError, match=says):
        parse(cron, zone)


def test_the_condition_names_the_bad_schedule_and_passes_the_good() -> None:
    good = {"name": "ok", "cron": "* * * * *"}
    bad = {"name": "typo", "cron": "* * * * *", "timeZone": "Europe/Berlinn"}
    assert problems([good]) == []
    condition = scheduled_condition([good, bad], 3)
    assert condition is not None
    assert (condition.status, condition.reason) == ("False", "InvalidSchedule")
    assert "schedule typo: unknown time zone 'Europe/Berlinn'" in condition.message
    ok = scheduled_condition([good])
    assert ok is not None and (ok.status, ok.reason) == ("True", "Valid")
    assert scheduled_condition([]) is None


# -- time zones and DST ----------------------------------------------------------


def test_a_time_zone_shifts_the_times() -> None:
    cron = parse("0 9 * * *", "America/New_York")
    assert cron.after(at(2026, 1, 1)) == at(2026, 1, 1, 14)  # EST, UTC-5
    assert cron.after(at(2026, 7, 1)) == at(2026, 7, 1, 13)  # EDT, UTC-4


def test_a_time_in_the_skipped_hour_runs_right_after_the_jump() -> None:
    # Europe/Berlin skips 02:00-03:00 on 2026-03-29.
    cron = parse("30 2 * * *", "Europe/Berlin")
    times = [cron.after(at(2026, 3, 27, 12))]
    times.append(cron.after(times[-1]))
    times.append(cron.after(times[-1]))
    assert times == [at(2026, 3, 28, 1, 30), at(2026, 3, 29, 1, 0), at(2026, 3, 30, 0, 30)]


def test_a_fixed_time_in_the_repeated_hour_runs_once() -> None:
    # Europe/Berlin repeats 02:00-03:00 on 2026-10-25.
    cron = parse("30 2 * * *", "Europe/Berlin")
    first = cron.after(at(2026, 10, 24, 12))
    assert first == at(2026, 10, 25, 0, 30)  # 02:30 CEST
    assert cron.after(first) == at(2026, 10, 26, 1, 30)  # next day, CET


def test_hourly_runs_in_both_repeated_hours() -> None:
    cron = parse("@hourly", "Europe/Berlin")
    times, t = [], at(2026, 10, 24, 23, 30)
    for _ in range(4):
        t = cron.after(t)
        times.append(t)
    assert times == [at(2026, 10, 25, h) for h in (0, 1, 2, 3)]


# -- what is due -------------------------------------------------------------------


def test_nothing_is_due_before_the_first_time() -> None:
    cron = parse("0 * * * *")
    assert due(cron, since=at(2026, 1, 1, 12, 1), last=None, deadline_seconds=None,
               now=at(2026, 1, 1, 12, 59)) is None  # fmt: skip


def test_only_the_most_recent_missed_time_is_due() -> None:
    cron = parse("*/5 * * * *")
    found = due(cron, since=at(2026, 1, 1), last=at(2026, 1, 1, 12), deadline_seconds=None,
                now=at(2026, 1, 1, 12, 17, 3))  # fmt: skip
    assert found == Due(at(2026, 1, 1, 12, 15), 3)


def test_a_time_is_due_at_the_second_it_comes() -> None:
    cron = parse("* * * * *")
    found = due(cron, since=at(2026, 1, 1), last=at(2026, 1, 1, 12), deadline_seconds=None,
                now=at(2026, 1, 1, 12, 1))  # fmt: skip
    assert found == Due(at(2026, 1, 1, 12, 1), 1)


def test_without_a_last_time_the_schedule_counts_from_when_it_appeared() -> None:
    cron = parse("0 * * * *")
    found = due(cron, since=at(2026, 1, 1, 9, 30), last=None, deadline_seconds=None,
                now=at(2026, 1, 1, 10, 0, 5))  # fmt: skip
    assert found == Due(at(2026, 1, 1, 10), 1)


def test_after_an_outage_times_past_the_deadline_are_dropped() -> None:
    cron = parse("0 * * * *")
    now = at(2026, 1, 1, 15, 10)
    # Down from 11:30 to 15:10: 12:00..15:00 missed; with 5 minutes of grace
    # none may start, and the operator says that some were missed.
    args = {"since": at(2026, 1, 1), "last": at(2026, 1, 1, 11), "now": now}
    assert due(cron, deadline_seconds=5 * 60, **args) is None
    assert missed_beyond_deadline(cron, deadline_seconds=5 * 60, **args)
    # With 15 minutes of grace at 15:10, 15:00 still starts.
    assert due(cron, deadline_seconds=15 * 60, **args) == Due(at(2026, 1, 1, 15), 1)
    # Without a deadline the latest starts however late, and nothing is "missed".
    assert due(cron, deadline_seconds=None, **args) == Due(at(2026, 1, 1, 15), 4)
    assert not missed_beyond_deadline(cron, deadline_seconds=None, **args)


def test_more_than_100_missed_times_start_the_latest_and_are_reported() -> None:
    cron = parse("* * * * *")
    now = at(2026, 1, 2, 10, 21, 7)
    found = due(cron, since=at(2026, 1, 1), last=at(2026, 1, 1, 8, 29), deadline_seconds=None,
                now=now)  # fmt: skip
    assert found is not None
    assert found.time == at(2026, 1, 2, 10, 21)
    assert found.missed == TOO_MANY_MISSED + 1
    d = decision(cron, found, now=now)
    assert d.create == run_name("wf", "s", found.time)
    assert d.too_many_missed == TOO_MANY_MISSED + 1
    # A deadline keeps the count small: nothing to report.
    within = due(cron, since=at(2026, 1, 1), last=at(2026, 1, 1, 8, 29), deadline_seconds=200,
                 now=now)  # fmt: skip
    assert within is not None and within.missed == 4
    assert decision(cron, within, now=now).too_many_missed == 0


# -- what to do ----------------------------------------------------------------------


def test_allow_starts_the_run_and_moves_the_times() -> None:
    cron = parse("* * * * *")
    found = Due(at(2026, 1, 1, 12), 1)
    d = decision(cron, found, unfinished=("wf-s-1",))
    assert d.create == run_name("wf", "s", at(2026, 1, 1, 12))
    assert d.cancel == ()
    assert (d.last_schedule_time, d.next_schedule_time) == (found.time, at(2026, 1, 1, 12, 1))


def test_forbid_skips_while_an_earlier_run_is_unfinished() -> None:
    cron = parse("* * * * *")
    found = Due(at(2026, 1, 1, 12), 1)
    last = at(2026, 1, 1, 11, 59)
    d = decision(cron, found, policy=ConcurrencyPolicy.FORBID, unfinished=("old",), last=last)
    assert (d.create, d.skipped, d.last_schedule_time) == (None, Skip.FORBIDDEN, last)
    assert d.next_schedule_time == at(2026, 1, 1, 12, 1)
    free = decision(cron, found, policy=ConcurrencyPolicy.FORBID, last=last)
    assert free.create is not None and free.last_schedule_time == found.time


def test_the_run_for_the_same_time_neither_blocks_nor_replaces_itself() -> None:
    cron = parse("* * * * *")
    found = Due(at(2026, 1, 1, 12), 1)
    itself = run_name("wf", "s", found.time)
    for policy in ConcurrencyPolicy:
        d = decision(cron, found, policy=policy, unfinished=(itself,))
        assert (d.create, d.cancel, d.skipped) == (itself, (), None)


def test_replace_cancels_the_unfinished_runs_and_starts_the_new_one() -> None:
    cron = parse("* * * * *")
    found = Due(at(2026, 1, 1, 12), 1)
    d = decision(cron, found, policy=ConcurrencyPolicy.REPLACE, unfinished=("b", "a"))
    assert d.cancel == ("a", "b")
    assert d.create == run_name("wf", "s", found.time)


def test_a_suspended_schedule_starts_nothing_and_keeps_its_last_time() -> None:
    cron = parse("* * * * *")
    last = at(2026, 1, 1, 11)
    d = decision(cron, Due(at(2026, 1, 1, 12), 60), suspend=True, last=last)
    assert (d.create, d.skipped, d.last_schedule_time, d.next_schedule_time) == (
        None,
        Skip.SUSPENDED,
        last,
        None,
    )


def test_nothing_due_sets_only_the_next_time() -> None:
    cron = parse("0 0 * * *")
    d = decision(cron, None, last=at(2026, 1, 1))
    assert (d.create, d.last_schedule_time, d.next_schedule_time) == (
        None,
        at(2026, 1, 1),
        at(2026, 1, 2),
    )


# -- run names -------------------------------------------------------------------------


def test_run_names_are_deterministic_and_fit_a_label_value() -> None:
    time = at(2026, 1, 1, 12)
    minutes = str(int(time.timestamp()) // 60)
    assert run_name("wf", "nightly", time) == f"wf-nightly-{minutes}"
    assert run_name("wf", "nightly", time + dt.timedelta(seconds=59)) == f"wf-nightly-{minutes}"
    long = run_name("w" * 60, "s" * 40, time)
    assert len(long) <= MAX_RUN_NAME and long.endswith(minutes)
    assert long == run_name("w" * 60, "s" * 40, time)
    assert long != run_name("w" * 60, "s" * 39 + "t", time)
