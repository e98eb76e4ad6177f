"""Ranked model search, the same on PostgreSQL and on the embedded SQLite default.

Text becomes *terms* here, in Python, for both databases: words of letters and digits,
lowercased, English stop words dropped (PostgreSQL's own list), each reduced to its Snowball
English stem. Four fields are indexed: the name (owner and model name), tags, description and
README. PostgreSQL stores them as one ``tsvector`` weighted A/B/C/D (the ``simple``
configuration, since the stems are already made) with a GIN index, and the name's words with a
pg_trgm GIN index; SQLite stores the same terms in an FTS5 table, one column per field, and gets
pg_trgm's ``word_similarity`` as a Python function (``catalog.trigram``).

Every query word must match a model, as a prefix of a term in any field or, for a typo, by
trigram similarity (≥ 0.6) to a word of the name. A word scores by the best field it matches:
name 8, tags 4, a typo of the name 3, description 2, README 1. The score is the sum over words,
reported as a fraction of the most a query could score (1.0 = every word in the name); equal
scores are ordered by run count (popularity), then newest. Both databases compute this same
integer score, so the results and their order agree.
"""

from __future__ import annotations

import functools
import re
import threading
from typing import Any

import snowballstemmer
from django.db import connection
from django.db.models import BooleanField, F, FloatField, QuerySet
from django.db.models.expressions import RawSQL

from marketplace.catalog.models import Model
from marketplace.catalog.trigram import THRESHOLD

FTS_TABLE = "catalog_search_fts"
# Field → (tsvector weight, FTS5 column, score of a word matched there).
FIELDS = {
    "name": ("A", "name", 8),
    "tags": ("B", "tags", 4),
    "description": ("C", "description", 2),
    "readme": ("D", "readme", 1),
}
TYPO_SCORE = 3
BEST = 8
MAX_WORDS = 8

# PostgreSQL's english.stop (from Snowball): words too common to search by.
_STOP_WORDS_TEXT = """
i me my myself we our ours ourselves you your yours yourself yourselves he him his himself
she her hers herself it its itself they them their theirs themselves what which who whom
this that these those am is are was were be been being have has had having do does did doing
a an the and but if or because as until while of at by for with about against between into
through during before after above below to from up down in out on off over under again
further then once here there when where why how all any both each few more most other some
such no nor not only own same so than too very s t can will just don should now
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())
_WORD = re.compile(r"[^\W_]+")
_local = threading.local()


# Pure-Python Snowball costs ~0.1 ms a word; catalogs repeat their words, so each process
# remembers stems (highlighting a page of cards stems every word shown).
@functools.lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    # Snowball stemmers keep state between calls: one per thread.
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = snowballstemmer.stemmer("english")
    return str(stemmer.stemWord(word))


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def terms(text: str) -> list[str]:
    return [_stem(w) for w in words(text) if w not in STOP_WORDS]


def query_words(text: str) -> list[tuple[str, str]]:
    """(word, stem) of each distinct searchable word of a query, at most MAX_WORDS."""
    seen: dict[str, tuple[str, str]] = {}
    for word in words(text):
        if word not in STOP_WORDS and word not in seen:
            seen[word] = (word, _stem(word))
    return list(seen.values())[:MAX_WORDS]


Row = tuple[int, str, str, list[str], str, str]  # id, owner, name, tags, description, readme


def index_model(model: Model) -> None:
    """Write what search matches ``model`` by (after any change to its name, owner, tags,
    description or README)."""
    tags = list(model.tags.values_list("name", flat=True))
    write_documents(
        [(model.pk, model.owner.username, model.name, tags, model.description, model.readme)]
    )


def write_documents(rows: list[Row]) -> None:
    """Index models given as rows (also what the migration and ``reindex_search`` use)."""
    if not rows:
        return
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            vector = " || ".join(
                f"setweight(to_tsvector('simple', %s), '{weight}')"
                for weight, _, _ in FIELDS.values()
            )
            params: list[list[Any]] = [
                [row[0], _name_words(row[1], row[2]), *_fields(*row[1:])] for row in rows
            ]
            cursor.executemany(
                "INSERT INTO catalog_searchdocument (model_id, name, vector) "  # noqa: S608
                f"VALUES (%s, %s, {vector}) ON CONFLICT (model_id) "
                "DO UPDATE SET name = EXCLUDED.name, vector = EXCLUDED.vector",
                params,
            )
        else:
            ids = [(row[0],) for row in rows]
            cursor.executemany("DELETE FROM catalog_searchdocument WHERE model_id = %s", ids)
            cursor.executemany(f"DELETE FROM {FTS_TABLE} WHERE rowid = %s", ids)  # noqa: S608
            cursor.executemany(
                "INSERT INTO catalog_searchdocument (model_id, name) VALUES (%s, %s)",
                [(row[0], _name_words(row[1], row[2])) for row in rows],
            )
            cursor.executemany(
                f"INSERT INTO {FTS_TABLE} (rowid, name, tags, description, readme) "  # noqa: S608
                "VALUES (%s, %s, %s, %s, %s)",
                [(row[0], *_fields(*row[1:])) for row in rows],
            )


def reindex_all(batch: int = 2000) -> int:
    """Index every model again (after rows were written around the ORM, e.g. by COPY)."""
    tags: dict[int, list[str]] = {}
    for model_id, tag in Model.tags.through.objects.values_list("model_id", "tag__name"):
        tags.setdefault(model_id, []).append(tag)
    rows = Model.objects.order_by("pk").values_list(
        "pk", "owner__username", "name", "description", "readme"
    )
    pending: list[Row] = []
    count = 0
    for pk, owner, name, description, readme in rows.iterator(chunk_size=batch):
        pending.append((pk, owner, name, tags.get(pk, []), description, readme))
        if len(pending) == batch:
            write_documents(pending)
            count, pending = count + len(pending), []
    write_documents(pending)
    return count + len(pending)


def _name_words(owner: str, name: str) -> str:
    return " ".join(words(f"{owner} {name}"))


def _fields(owner: str, name: str, tags: list[str], description: str, readme: str) -> list[str]:
    return [
        " ".join(terms(f"{owner} {name}")),
        " ".join(terms(" ".join(tags))),
        " ".join(terms(description)),
        " ".join(terms(readme)),
    ]


def forget_model(model_id: int) -> None:
    """SQLite's FTS5 rows have no foreign key to cascade from."""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {FTS_TABLE} WHERE rowid = %s", [model_id])  # noqa: S608


# Django's alias of the search document table once a queryset joins it (``ranked``'s
# ``search_document__isnull=False``, the only join of that table in these queries).
D = '"catalog_searchdocument"'


def _word_sql(word: str, stem: str) -> tuple[str, list[Any], str, list[Any]]:
    """(match condition, params, score expression, params) of one query word, over the joined
    search document ``D``."""
    if connection.vendor == "postgresql":
        match = f"({D}.vector @@ to_tsquery('simple', %s) OR %s <%% {D}.name)"
        match_params: list[Any] = [f"{stem}:*", word]
        cases: list[tuple[str, list[Any], int]] = [
            (f"{D}.vector @@ to_tsquery('simple', %s)", [f"{stem}:*{weight}"], score)
            for weight, _, score in FIELDS.values()
        ]
    else:
        fts = f"{D}.model_id IN (SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH %s)"  # noqa: S608
        match = f"({fts} OR word_similarity(%s, {D}.name) >= %s)"
        match_params = [f'"{stem}"*', word, THRESHOLD]
        cases = [
            (fts, [f'{{{column}}} : "{stem}"*'], score) for _, column, score in FIELDS.values()
        ]
    typo = (f"word_similarity(%s, {D}.name) >= %s", [word, THRESHOLD], TYPO_SCORE)
    ordered = [*cases[:2], typo, *cases[2:]]
    score = "CASE " + " ".join(f"WHEN {c} THEN {s}" for c, _, s in ordered) + " ELSE 0 END"
    return match, match_params, score, [p for _, params, _ in ordered for p in params]


def _sql(text: str) -> tuple[RawSQL, RawSQL] | None:
    """The match condition and the score of a query, or None when it has no searchable word."""
    pairs = query_words(text)
    if not pairs:
        return None
    matches, match_params, scores, score_params = [], [], [], []
    for word, stem in pairs:
        match, m_params, score, s_params = _word_sql(word, stem)
        matches.append(match)
        match_params.extend(m_params)
        scores.append(score)
        score_params.extend(s_params)
    total = " + ".join(f"({s})" for s in scores)
    condition = RawSQL(  # noqa: S611 (every value is a parameter)
        " AND ".join(matches), match_params, output_field=BooleanField()
    )
    scored = RawSQL(  # noqa: S611
        f"CAST({total} AS REAL) / {BEST * len(pairs)}", score_params, output_field=FloatField()
    )
    return condition, scored


def matching(queryset: QuerySet[Model], text: str) -> QuerySet[Model]:
    """``queryset`` narrowed to models matching every word of ``text``, unordered (what a count
    needs: scoring every match only to count them would double the work)."""
    sql = _sql(text)
    if sql is None:
        return queryset.none()
    # One join with the document: PostgreSQL finds the rows through its GIN indexes (a bitmap
    # OR per word) and scores them in the same pass.
    return queryset.filter(search_document__isnull=False).filter(sql[0])


def ranked(queryset: QuerySet[Model], text: str) -> QuerySet[Model]:
    """:func:`matching`, annotated with ``search_score`` (0 to 1) and ordered by it, then run
    count, then newest. A query without searchable words matches nothing."""
    sql = _sql(text)
    if sql is None:
        return queryset.none()
    return (
        queryset.filter(search_document__isnull=False)
        .filter(sql[0])
        .annotate(search_score=sql[1])
        .order_by(F("search_score").desc(), "-run_count", "-created_at", "-pk")
    )
