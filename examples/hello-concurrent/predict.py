"""Say hello, asynchronously: one container serves up to 8 predictions at the same time."""

import asyncio

import cog
from cog import BasePredictor, Input


class Predictor(BasePredictor):
    @cog.concurrent(max=8)
    async def predict(self, text: str = Input(description="Who to greet", default="world")) -> str:
        await asyncio.sleep(0)  # yield to the event loop, as a real async model would
        return "hello " + text
