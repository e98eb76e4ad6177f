"""A fixed corpus and the queries search is judged on, loaded into whichever database Django
uses. ``python -m tests.marketplace.catalog.search_corpus`` runs it on a fresh SQLite file (the
embedded default) and prints the results as JSON, so a test on PostgreSQL can compare both."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from typing import Any

# (owner, name, visibility, run_count, tags, description, readme)
CORPUS = [
    ("stability", "stable-diffusion", "public", 900, ["text-to-image"],
     "Generate images from text prompts", "A latent diffusion model."),
    ("stability", "sdxl-turbo", "public", 50, ["text-to-image", "fast"],
     "Fast image generation", "Distilled from stable diffusion XL."),
    ("nightmare", "real-esrgan", "public", 700, ["upscaling", "super-resolution"],
     "Restore and enlarge photos", "ESRGAN trained on pure synthetic data."),
    ("tencent", "photo-upscaler", "public", 10, [],
     "Upscaled photographs with sharp detail", "Upscaling of old photos."),
    ("openai", "whisper", "public", 800, ["speech-to-text", "audio"],
     "Transcribe speech in many languages", "Robust speech recognition."),
    ("meta", "musicgen", "public", 300, ["audio"],
     "Generate music from a description", "Whisper quiet or loud, any music style."),
    ("meta", "llama-3-chat", "public", 950, ["chat", "language-model"],
     "A chat model", "Llamas are not camels."),
    ("alice", "secret-diffusion", "private", 5000, ["text-to-image"],
     "A private diffusion model", "Nobody else sees it."),
    ("bob", "anime-style", "public", 20, ["anime", "style-transfer"],
     "Turn photos into anime drawings", ""),
    ("carol", "segmentation", "public", 40, ["segment"],
     "Segment anything in an image", "Masks for every object; upscaling is not included."),
]  # fmt: skip

QUERIES = [
    "difusion",  # a typo of a name
    "llamma",  # another
    "diffusion",
    "upscaling",  # stemming: upscaler, upscaled, upscaling
    "upscale photos",
    "audio",  # a tag match outranks a README match ("whisper quiet")
    "whisper",
    "anime",
    "segmenting",
    "text to image",
    "secret",  # private: never shown to outsiders
    "the of and",
]


def load() -> None:
    from marketplace.accounts.models import Account, User
    from marketplace.catalog.models import Hardware, Model
    from marketplace.catalog.tags import set_tags

    hardware = Hardware.objects.order_by("pk").first() or Hardware.objects.create(
        sku="cpu", name="CPU", price_per_second="0.0001"
    )
    for owner, name, visibility, runs, tags, description, readme in CORPUS:
        user, _ = User.objects.get_or_create(username=owner)
        account = Account.objects.get(user=user)
        model = Model.objects.create(
            owner=account,
            name=name,
            visibility=visibility,
            run_count=runs,
            description=description,
            readme=readme,
            default_hardware=hardware,
        )
        set_tags(model, tags)


def results(user: Any = None) -> dict[str, list[list[Any]]]:
    """Each query's (owner/name, score) in ranked order, as an outsider (or ``user``) sees it."""
    from marketplace.catalog import search
    from marketplace.catalog.models import Model

    return {
        query: [
            [m.full_name, round(m.search_score, 6)]
            for m in search.ranked(Model.objects.visible_to(user).select_related("owner"), query)
        ]
        for query in QUERIES
    }


def main() -> None:
    directory = tempfile.mkdtemp(prefix="search-corpus-")
    os.environ["DATABASE_URL"] = f"sqlite:///{directory}/corpus.sqlite3"
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    assert connection.vendor == "sqlite"
    load()
    json.dump({"vendor": connection.vendor, "results": results()}, sys.stdout)


if __name__ == "__main__":
    main()
