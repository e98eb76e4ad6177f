"""Apply a classic image filter with Pillow and return the result as a PNG."""

import tempfile

from cog import BasePredictor, Input, Path
from PIL import Image, ImageFilter, ImageOps

FILTERS = ["grayscale", "blur", "edges", "sepia", "invert", "posterize"]


def _sepia(img: Image.Image) -> Image.Image:
    # Map luminance onto a dark-brown -> cream ramp: the usual "old photo" look.
    return ImageOps.colorize(
        ImageOps.grayscale(img), black="#2e1f0f", white="#fff3d6", mid="#a2804f"
    )


class Predictor(BasePredictor):
    def predict(
        self,
        image: Path = Input(
            description="Image to filter (PNG, JPEG, WebP, GIF...)", accept="image/*"
        ),
        filter: str = Input(description="Filter to apply", default="sepia", choices=FILTERS),
        size: int = Input(
            description="Longest side of the output in pixels (the image is scaled to fit)",
            default=512,
            ge=16,
            le=2048,
        ),
    ) -> Path:
        with Image.open(image) as src:
            # Honour camera orientation, drop alpha/palette so every filter sees plain RGB.
            img = ImageOps.exif_transpose(src).convert("RGB")
        img = ImageOps.contain(img, (size, size), Image.Resampling.LANCZOS)
        print(f"filtering {img.width}x{img.height} with {filter!r}")

        if filter == "grayscale":
            out = ImageOps.grayscale(img)
        elif filter == "blur":
            out = img.filter(ImageFilter.GaussianBlur(radius=max(1.0, size / 100)))
        elif filter == "edges":
            out = ImageOps.autocontrast(ImageOps.grayscale(img).filter(ImageFilter.FIND_EDGES))
        elif filter == "sepia":
            out = _sepia(img)
        elif filter == "invert":
            out = ImageOps.invert(img)
        else:  # posterize
            out = ImageOps.posterize(img, bits=3)

        out_path = Path(tempfile.mkdtemp(prefix="image-filter-")) / f"{filter}.png"
        out.save(out_path, format="PNG", optimize=True)
        return out_path
