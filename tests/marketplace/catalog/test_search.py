"""Search quality on a fixed corpus, and the same answers from PostgreSQL and SQLite."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from marketplace.catalog import trigram
from marketplace.catalog.models import Model
from tests.marketplace.catalog import search_corpus

pytestmark = pytest.mark.django_db


@pytest.fixture
def corpus() -> dict[str, list[list[Any]]]:
    search_corpus.load()
    return search_corpus.results()


def names(hits: list[list[Any]]) -> list[str]:
    return [name for name, _ in hits]


def test_a_typo_still_finds_the_model(corpus: dict[str, list[list[Any]]]) -> None:
    assert names(corpus["difusion"])[0] == "stability/stable-diffusion"
    assert names(corpus["llamma"]) == ["meta/llama-3-chat"]


def test_stemming_matches_other_forms_of_a_word(corpus: dict[str, list[list[Any]]]) -> None:
    found = names(corpus["upscaling"])
    # A tag, a name ("upscaler") and a description ("upscaled"), then a README mention.
    assert found[:2] == ["tencent/photo-upscaler", "nightmare/real-esrgan"]
    assert set(found) == {"tencent/photo-upscaler", "nightmare/real-esrgan", "carol/segmentation"}
    assert names(corpus["segmenting"]) == ["carol/segmentation"]


def test_a_tag_match_outranks_a_readme_match(corpus: dict[str, list[list[Any]]]) -> None:
    # musicgen's tag is "audio"; whisper has it as a tag too; nobody has it in the name.
    assert names(corpus["audio"]) == ["openai/whisper", "meta/musicgen"]  # popularity breaks ties
    # "whisper": the name of openai/whisper, only the README of meta/musicgen.
    ranked = corpus["whisper"]
    assert names(ranked) == ["openai/whisper", "meta/musicgen"]
    assert ranked[0][1] > ranked[1][1]


def test_every_word_must_match_and_scores_order_results(
    corpus: dict[str, list[list[Any]]],
) -> None:
    assert names(corpus["upscale photos"]) == ["tencent/photo-upscaler", "nightmare/real-esrgan"]
    scores = [score for _, score in corpus["diffusion"]]
    assert scores == sorted(scores, reverse=True) and 0 < scores[-1] <= scores[0] == 1.0
    assert corpus["the of and"] == []


def test_private_models_never_appear_to_outsiders(corpus: dict[str, list[list[Any]]]) -> None:
    assert corpus["secret"] == []
    assert "alice/secret-diffusion" not in names(corpus["diffusion"])
    alice = Model.objects.get(name="secret-diffusion").owner.user
    assert names(search_corpus.results(alice)["secret"]) == ["alice/secret-diffusion"]


def test_postgresql_and_sqlite_give_the_same_results(corpus: dict[str, list[list[Any]]]) -> None:
    assert connection.vendor == "postgresql", "make test runs the suite on PostgreSQL"
    answer = subprocess.run(
        [sys.executable, "-m", "tests.marketplace.catalog.search_corpus"],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "DATABASE_URL": ""},
    )
    assert answer.returncode == 0, answer.stderr
    sqlite = json.loads(answer.stdout)
    assert sqlite["vendor"] == "sqlite"
    assert sqlite["results"] == corpus


def test_word_similarity_agrees_with_pg_trgm() -> None:
    pairs = [
        (query, text)
        for query in ("difusion", "llamma", "wisper", "upscal", "sdxl turbo", "x")
        for text in ("stability stable diffusion", "meta llama 3 chat", "openai whisper",
                     "tencent photo upscaler", "stability sdxl turbo", "a b c")
    ]  # fmt: skip
    with connection.cursor() as cursor:
        for query, text in pairs:
            cursor.execute("SELECT word_similarity(%s, %s)", [query, text])
            (expected,) = cursor.fetchone()
            assert trigram.word_similarity(query, text) == pytest.approx(expected, abs=1e-6)
