"""Stream text from a word-level Markov chain trained at setup() on corpus.txt.

A tiny stand-in for a language model: same streaming output type (ConcatenateIterator[str]),
same knobs (prompt, max_tokens, temperature, seed), real text, no weights to download.
"""

import random
import re
import time
from collections import Counter, defaultdict
from pathlib import Path as FsPath

import cog
from cog import BasePredictor, ConcatenateIterator, Input

CORPUS = FsPath(__file__).with_name("corpus.txt")
ORDER = 2  # words of context per state: 2 reads fluently without copying whole sentences
TOKEN_DELAY_SECONDS = 0.05  # pretend each token costs a little compute, so streaming is visible


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z0-9'\u2019-]+[.,;:!?]?", text)


class Predictor(BasePredictor):
    def setup(self) -> None:
        # Skip the two header paragraphs (title, licence note); train on the story itself.
        story = CORPUS.read_text(encoding="utf-8").split("\n\n", 2)[2]
        words = _words(story)
        self.chain: dict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
        for i in range(len(words) - ORDER):
            self.chain[tuple(w.lower() for w in words[i : i + ORDER])][words[i + ORDER]] += 1
        # Sentence openings: states that follow a full stop, used to start and to recover.
        self.starts = [
            tuple(words[i : i + ORDER])
            for i in range(1, len(words) - ORDER)
            if words[i - 1].endswith((".", "!", "?")) and words[i][0].isupper()
        ]
        print(f"trained on {len(words)} words: {len(self.chain)} states")

    def _next(self, state: tuple[str, ...], rng: random.Random, temperature: float) -> str | None:
        followers = self.chain.get(tuple(w.lower() for w in state))
        if not followers:
            return None
        words = list(followers)
        # temperature < 1 sharpens the distribution towards frequent continuations, > 1 flattens it
        weights = [count ** (1.0 / temperature) for count in followers.values()]
        return rng.choices(words, weights=weights)[0]

    @cog.streaming
    def predict(
        self,
        prompt: str = Input(
            description="Opening words; the story continues from the last two if it knows them",
            default="The keeper",
            max_length=200,
        ),
        max_tokens: int = Input(
            description="Number of words to generate", default=60, ge=1, le=500
        ),
        temperature: float = Input(
            description="Higher is more surprising, lower more repetitive",
            default=1.0,
            ge=0.1,
            le=3.0,
        ),
        seed: int | None = Input(description="Random seed; leave blank to randomize", default=None),
    ) -> ConcatenateIterator[str]:
        if seed is None:
            seed = random.SystemRandom().randrange(2**32)
        print(f"Using seed: {seed}")
        rng = random.Random(seed)

        context = _words(prompt)
        if len(context) >= ORDER and tuple(w.lower() for w in context[-ORDER:]) in self.chain:
            state = tuple(context[-ORDER:])
            pending: list[str] = []
        else:  # unknown prompt: open a fresh sentence from the story
            state = rng.choice(self.starts)
            pending = list(state)

        for i in range(max_tokens):
            if pending:
                word = pending.pop(0)
            else:
                word = self._next(state, rng, temperature)
                if word is None:  # dead end (the last words of the story): open a new sentence
                    state = rng.choice(self.starts)
                    pending = list(state)
                    word = pending.pop(0)
                else:
                    state = (*state[1:], word)
            time.sleep(TOKEN_DELAY_SECONDS)
            # Tokens carry their leading space, as LLM tokens do, so chunks concatenate into text.
            yield word if i == 0 and not prompt.strip() else f" {word}"
