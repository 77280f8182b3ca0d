"""The audio checks' judge: flags from levels, the running median, which take is better, joined parts."""

from __future__ import annotations

import pytest

from batchtts.api.request import TtsRequest
from batchtts.audio.meter import SILENCE_DBFS, AudioLevels
from batchtts.job.qa import FLAGS, QaCheck, QaJudge, QaOptions, RunningMedian, better, combine, describe

RATE = 8000


def levels(seconds: float, **overrides: object) -> AudioLevels:
    values: dict[str, object] = {
        "samples": round(seconds * RATE),
        "sample_rate": RATE,
        "peak_dbfs": -6.0,
        "rms_dbfs": -20.0,
        "clipped_share": 0.0,
        "leading_silence_s": 0.0,
        "trailing_silence_s": 0.1,
        "longest_silence_s": 0.3,
        "silent": False,
    }
    values.update(overrides)
    return AudioLevels(**values)  # type: ignore[arg-type]


def request(text: str = "x" * 50, voice: str = "magnus", speed: float = 1.0) -> TtsRequest:
    return TtsRequest(text=text, voice_id=voice, speed=speed)


def judge(**options: object) -> QaJudge:
    return QaJudge(QaOptions(**{"min_rows": 3, **options}))  # type: ignore[arg-type]


def test_a_clean_take_has_no_flags_and_feeds_the_median():
    qa = judge()
    check = qa.check(request(), levels(3.0))
    assert check.flags == () and check.seconds_per_char == pytest.approx(0.06)
    assert check.columns()["qa"] == [] and not any(check.columns()[flag] for flag in FLAGS)


def test_truncated_and_overlong_only_once_the_median_is_trusted():
    qa = judge()
    assert qa.check(request(), levels(0.5)).flags == ()  # two takes in: not trusted yet
    qa.check(request(), levels(3.0))
    qa.check(request(), levels(3.0))
    qa.check(request(), levels(3.1))  # the median: 3.0 s per 50 characters (the short take included)
    assert qa.check(request(), levels(1.4)).flags == ("truncated",)
    assert qa.check(request(), levels(6.5)).flags == ("overlong",)
    assert qa.check(request(), levels(5.9)).flags == ()
    # Flagged takes do not move the median.
    for _ in range(20):
        qa.check(request(), levels(1.0))
    assert qa.check(request(), levels(3.0)).flags == ()


def test_the_median_is_per_voice_speed_and_language():
    qa = judge()
    for _ in range(3):
        qa.check(request(), levels(3.0))
    assert qa.check(request(voice="emily"), levels(1.0)).flags == ()  # emily has no median yet
    assert qa.check(request(speed=2.0), levels(1.0)).flags == ()
    assert qa.check(request(), levels(1.0)).flags == ("truncated",)


def test_silent_clipped_and_long_silence():
    qa = judge(max_silence=1.0, clip_share=0.01)
    check = qa.check(request(), levels(3.0, silent=True, peak_dbfs=SILENCE_DBFS))
    assert check.flags == ("silent",)
    assert qa.check(request(), levels(3.0, clipped_share=0.02)).flags == ("clipped",)
    assert qa.check(request(), levels(3.0, clipped_share=0.005)).flags == ()
    assert qa.check(request(), levels(3.0, longest_silence_s=1.5)).flags == ("long_silence",)
    both = qa.check(request(), levels(3.0, longest_silence_s=1.5, clipped_share=0.5))
    assert both.flags == ("long_silence", "clipped")  # worst first
    assert both.columns()["clipped"] and both.columns()["long_silence"] and not both.columns()["silent"]


def test_better_prefers_fewer_and_milder_flags_and_keeps_the_first_on_a_tie():
    def take(*flags: str) -> QaCheck:
        return QaCheck(levels(1.0), 0.02, flags)

    assert better(take("silent"), take())
    assert better(take("silent"), take("truncated"))
    assert better(take("truncated"), take("clipped", "overlong"))
    assert not better(take("clipped"), take("clipped"))
    assert not better(take(), take("overlong"))
    assert describe(("silent", "clipped")) == "audio check failed: silent, clipped"


def test_running_median_window():
    median = RunningMedian(window=3)
    assert median.median() is None
    for value in (5.0, 1.0, 3.0):
        median.add(value)
    assert median.median() == 3.0
    median.add(10.0)  # 5.0 leaves
    assert len(median) == 3 and median.median() == 3.0
    median.add(11.0)  # 1.0 leaves
    assert median.median() == 10.0


def test_combine_joins_parts():
    first = QaCheck(levels(1.0, leading_silence_s=0.2, rms_dbfs=-20.0, peak_dbfs=-3.0), 0.05, ())
    second = QaCheck(levels(1.0, trailing_silence_s=0.4, rms_dbfs=-20.0, clipped_share=0.1), 0.05, ("clipped",))
    joined = combine([first, second], 2.0, 40)
    assert joined is not None
    assert joined.levels.samples == 2 * RATE and joined.seconds_per_char == pytest.approx(0.05)
    assert joined.levels.leading_silence_s == 0.2 and joined.levels.trailing_silence_s == 0.4
    assert joined.levels.rms_dbfs == pytest.approx(-20.0) and joined.levels.peak_dbfs == -3.0
    assert joined.levels.clipped_share == pytest.approx(0.05)
    assert joined.flags == ("clipped",)
    assert combine([], 1.0, 10) is None


def test_options_are_checked():
    with pytest.raises(ValueError):
        QaOptions(mode="maybe")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        QaOptions(short=1.5)
    assert not QaOptions(mode="off").enabled
