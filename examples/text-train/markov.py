"""A word-level Markov chain: the whole "model" of the text-train example.

Training counts which word follows each run of `order` words; generation walks those counts. The
weights are plain JSON, so a trained model can be read (and diffed) by a person.
"""

from __future__ import annotations

import base64
import json
import random
import re
import urllib.parse
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path

FORMAT = "text-train/markov-v1"
WORD = re.compile(r"[^\W_][\w'\u2019-]*[.,;:!?]?")  # a word and the punctuation right after it
SENTENCE_END = (".", "!", "?")


def words_of(text: str, lowercase: bool = False) -> list[str]:
    return WORD.findall(text.lower() if lowercase else text)


def key(state: list[str] | tuple[str, ...]) -> str:
    # States are looked up case-insensitively; words never contain spaces, so a space joins them.
    return " ".join(word.lower() for word in state)


def build(words: list[str], order: int, **about: object) -> dict:
    """Count transitions and sentence openings; returns the weights document."""
    chain: dict[str, Counter[str]] = defaultdict(Counter)
    for i in range(len(words) - order):
        chain[key(words[i : i + order])][words[i + order]] += 1
    starts = sorted(
        {
            " ".join(words[i : i + order])
            for i in range(len(words) - order)
            if (i == 0 or words[i - 1].endswith(SENTENCE_END)) and words[i][:1].isupper()
        }
    ) or [" ".join(words[:order])]
    return {
        "format": FORMAT,
        "order": order,
        "words": len(words),
        "states": len(chain),
        **about,
        "starts": starts,
        "chain": {state: dict(counts) for state, counts in sorted(chain.items())},
    }


def read_weights(location: str | Path) -> dict:
    """Load weights from a local path, a file:// or http(s):// URL, or a data: URI."""
    location = str(location)
    if location.startswith("data:"):
        header, _, payload = location.partition(",")
        raw = base64.b64decode(payload) if header.endswith(";base64") else payload.encode()
    elif location.startswith(("http://", "https://")):
        with urllib.request.urlopen(location, timeout=60) as response:  # noqa: S310 (http(s) only)
            raw = response.read()
    else:
        if location.startswith("file://"):
            location = urllib.parse.unquote(urllib.parse.urlparse(location).path)
        path = Path(location)
        if path.is_dir():
            path = path / "weights.json"
        raw = path.read_bytes()
    weights = json.loads(raw)
    if not isinstance(weights, dict) or weights.get("format") != FORMAT:
        raise ValueError(f"not {FORMAT} weights: {location[:200]}")
    return weights


class Chain:
    def __init__(self, weights: dict):
        self.order = int(weights["order"])
        self.chain: dict[str, dict[str, int]] = weights["chain"]
        self.starts: list[list[str]] = [s.split(" ") for s in weights["starts"]]

    def _next(self, state: list[str], rng: random.Random, temperature: float) -> str | None:
        followers = self.chain.get(key(state))
        if not followers:
            return None
        # temperature < 1 favours frequent continuations, > 1 flattens the distribution
        weights = [count ** (1.0 / temperature) for count in followers.values()]
        return rng.choices(list(followers), weights=weights)[0]

    def generate(self, prompt: str, length: int, temperature: float, rng: random.Random) -> str:
        """`length` words: continuing the prompt when the text knows its last words, else from
        the opening of a sentence of the text."""
        context = words_of(prompt)
        out: list[str] = []
        if len(context) >= self.order and key(context[-self.order :]) in self.chain:
            state = context[-self.order :]
        else:
            state = list(rng.choice(self.starts))
            out.extend(state)
        while len(out) < length:
            word = self._next(state, rng, temperature)
            if word is None:  # a dead end (the end of the text): open a new sentence
                state = list(rng.choice(self.starts))
                out.extend(state)
                continue
            out.append(word)
            state = [*state[1:], word]
        return " ".join(out[:length])
