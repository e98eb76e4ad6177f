"""When an instance sends its predictions to Cog inline (no webhook) and when it follows them."""

from __future__ import annotations

from workers.protocol import INLINE_AFTER, INLINE_BELOW_SECONDS, Pace


def _quick(pace: Pace, count: int = INLINE_AFTER) -> None:
    for _ in range(count):
        pace.record(0.001)


def test_inline_only_after_enough_quick_predictions_on_a_coglet_server() -> None:
    pace = Pace(inline_capable=True)
    for _ in range(INLINE_AFTER):
        assert not pace.inline
        pace.record(INLINE_BELOW_SECONDS / 10)
    assert pace.inline


def test_one_slow_prediction_sends_the_next_ones_back_to_being_followed() -> None:
    pace = Pace(inline_capable=True)
    _quick(pace)
    pace.record(INLINE_BELOW_SECONDS)
    assert not pace.inline
    _quick(pace, INLINE_AFTER - 1)
    assert not pace.inline


def test_an_unknown_run_time_counts_as_slow() -> None:
    pace = Pace(inline_capable=True)
    _quick(pace)
    pace.record(None)
    assert not pace.inline


def test_the_legacy_server_is_always_followed() -> None:
    pace = Pace(inline_capable=False)
    _quick(pace, INLINE_AFTER * 2)
    assert not pace.inline
