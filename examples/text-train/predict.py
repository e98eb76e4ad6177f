"""Write text in the voice of the text the model was trained on.

The base version learns the shipped story (corpus.txt) at setup; a trained version loads the
weights its training produced (COG_WEIGHTS -> setup(weights=...)) and writes like that text.
"""

from __future__ import annotations

import random
from pathlib import Path as FsPath

from cog import BasePredictor, Input, Path
from markov import Chain, build, read_weights, words_of

CORPUS = FsPath(__file__).with_name("corpus.txt")
DEFAULT_ORDER = 2


class Predictor(BasePredictor):
    def setup(self, weights: Path | str | None = None) -> None:
        # Cog passes COG_WEIGHTS as it is: a path, or a URL (the platform's signed weights URL).
        if weights:
            document = read_weights(weights)
            print(
                f"loaded trained weights: order {document['order']}, "
                f"{document['words']} words, {document['states']} states"
            )
        else:
            # Skip the two header paragraphs (title, licence note); learn the story itself.
            story = CORPUS.read_text(encoding="utf-8").split("\n\n", 2)[2]
            document = build(words_of(story), DEFAULT_ORDER, source="corpus.txt")
            print(f"no weights given: learned corpus.txt ({document['words']} words)")
        self.chain = Chain(document)

    def predict(
        self,
        prompt: str = Input(
            description="Opening words; the text continues from them if it knows them",
            default="",
            max_length=500,
        ),
        length: int = Input(description="Number of words to write", default=40, ge=1, le=500),
        temperature: float = Input(
            description="Higher is more surprising, lower more repetitive",
            default=1.0,
            ge=0.1,
            le=3.0,
        ),
        seed: int | None = Input(description="Random seed; leave blank to randomize", default=None),
    ) -> str:
        if seed is None:
            seed = random.SystemRandom().randrange(2**32)
        print(f"Using seed: {seed}")
        text = self.chain.generate(prompt, length, temperature, random.Random(seed))
        return f"{prompt.rstrip()} {text}" if prompt.strip() else text
