"""Say hello. Does nothing else, on purpose: it measures the platform, not the model."""

from cog import BasePredictor, Input


class Predictor(BasePredictor):
    def predict(self, text: str = Input(description="Who to greet", default="world")) -> str:
        return "hello " + text
