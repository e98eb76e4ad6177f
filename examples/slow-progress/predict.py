"""A deliberately slow model that logs tqdm-style progress lines.

Each step does a little real work (a SHA-256 hash chain) and then waits, so the whole run takes
`steps * step_seconds`. The progress lines look like tqdm's, which is what platforms parse to draw
progress bars:  ` 50%|█████     | 3/6 [00:01<00:01,  2.00it/s]`
"""

import hashlib
import time

from cog import BasePredictor, Input

BAR_WIDTH = 10
BLOCKS = " ▏▎▍▌▋▊▉█"  # tqdm's unicode bar: eighths of a character cell


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes:02d}:{secs:02d}"


def progress_line(done: int, total: int, elapsed: float) -> str:
    """Render one line in tqdm's default format."""
    fraction = done / total
    eighths = int(fraction * BAR_WIDTH * 8)
    full, part = divmod(eighths, 8)
    bar = ("█" * full + (BLOCKS[part] if part else "")).ljust(BAR_WIDTH)
    if done == 0 or elapsed <= 0:
        timing = f"{_clock(elapsed)}<?, ?it/s"
    else:
        rate = done / elapsed
        timing = f"{_clock(elapsed)}<{_clock((total - done) / rate)}, {rate:5.2f}it/s"
    return f"{fraction * 100:3.0f}%|{bar}| {done}/{total} [{timing}]"


class Predictor(BasePredictor):
    def predict(
        self,
        steps: int = Input(description="Number of steps", default=6, ge=1, le=100),
        step_seconds: float = Input(
            description="Seconds each step takes", default=0.5, ge=0.0, le=10.0
        ),
    ) -> str:
        started = time.monotonic()
        digest = b"cog"
        print(progress_line(0, steps, 0.0), flush=True)
        for step in range(1, steps + 1):
            deadline = time.monotonic() + step_seconds
            for _ in range(10_000):  # the "work": a short hash chain
                digest = hashlib.sha256(digest).digest()
            time.sleep(max(0.0, deadline - time.monotonic()))
            print(progress_line(step, steps, time.monotonic() - started), flush=True)
        elapsed = time.monotonic() - started
        return f"Completed {steps} steps in {elapsed:.2f} s (checksum {digest.hex()[:12]})"
