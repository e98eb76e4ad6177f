"""Train the text model on an uploaded text file: the weights are the file's word chain (JSON).

Runs in Cog's train mode (COG_TRAIN_TYPE_STUB=train.py:train). The chain is counted in chunks,
with a tqdm-style progress line after each, so a platform can draw a progress bar.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time

from cog import BaseModel, Input, Path
from markov import build, words_of

CHUNKS = 10
CHUNK_SECONDS = 0.1  # pretend each chunk costs a little compute, so progress is visible
MIN_WORDS = 20
MAX_BYTES = 10 * 1024 * 1024


class TrainingOutput(BaseModel):
    weights: Path


def _progress(done: int, total: int, started: float) -> str:
    elapsed = time.monotonic() - started
    bar = ("█" * (10 * done // total)).ljust(10)
    rate = f"{done / elapsed:5.2f}it/s" if done and elapsed > 0 else "?it/s"
    return f"{100 * done // total:3d}%|{bar}| {done}/{total} [{elapsed:05.2f}s, {rate}]"


def train(
    text_file: Path = Input(description="A plain-text (UTF-8) file whose voice the model learns"),
    order: int = Input(
        description="Words of context: 1 mixes the text freely, 3 quotes it almost verbatim",
        default=2,
        ge=1,
        le=3,
    ),
    lowercase: bool = Input(description="Learn the text in lower case", default=False),
) -> TrainingOutput:
    raw = Path(text_file).read_bytes()
    if len(raw) > MAX_BYTES:
        raise ValueError(f"text_file is {len(raw)} bytes; at most {MAX_BYTES} are accepted")
    text = raw.decode("utf-8", errors="replace")
    words = words_of(text, lowercase=lowercase)
    print(f"read {len(raw)} bytes: {len(words)} words")
    if len(words) < MIN_WORDS:
        raise ValueError(f"text_file has {len(words)} words; at least {MIN_WORDS} are needed")

    started = time.monotonic()
    print(_progress(0, CHUNKS, started), flush=True)
    for chunk in range(1, CHUNKS + 1):
        # The chain is counted once at the end (it is cheap); the chunks pace the progress bar
        # the way epochs would in a real training run.
        time.sleep(CHUNK_SECONDS)
        print(_progress(chunk, CHUNKS, started), flush=True)
    weights = build(
        words,
        order,
        lowercase=lowercase,
        source_sha256=hashlib.sha256(raw).hexdigest(),
    )
    out = Path(tempfile.mkdtemp(prefix="text-train-")) / "weights.json"
    out.write_text(json.dumps(weights, ensure_ascii=False), encoding="utf-8")
    print(f"learned {weights['states']} states from {weights['words']} words")
    return TrainingOutput(weights=out)
