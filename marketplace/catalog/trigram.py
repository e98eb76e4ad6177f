"""pg_trgm's ``word_similarity`` in Python, registered as an SQL function on SQLite connections.

PostgreSQL answers typo-tolerant name matches with pg_trgm (``term <% name``); the embedded SQLite
default has no such extension, so this module reproduces its definition (trgm_op.c,
``calc_word_similarity`` without the strict flag): a string is split into words of letters and
digits, each word lowercased and padded with two spaces in front and one behind, and cut into
trigrams. The similarity of ``query`` to ``text`` is the greatest ``shared / (|query| + |extent|
- shared)`` over contiguous extents of ``text``'s trigrams, counting distinct trigrams. A test
compares it with PostgreSQL's own function over a corpus.
"""

from __future__ import annotations

import re

# pg_trgm's default word_similarity_threshold.
THRESHOLD = 0.6
_WORD = re.compile(r"[^\W_]+")


def trigrams(text: str) -> list[str]:
    """Every trigram of every word, in order (repeats kept)."""
    out: list[str] = []
    for word in _WORD.findall(text.lower()):
        padded = f"  {word} "
        out.extend(padded[i : i + 3] for i in range(len(padded) - 2))
    return out


def word_similarity(query: str | None, text: str | None) -> float:
    if not query or not text:
        return 0.0
    wanted = set(trigrams(query))
    ordered = trigrams(text)
    if not wanted or not ordered:
        return 0.0
    ulen1 = len(wanted)
    best = 0.0
    lastpos: dict[str, int] = {}
    lower = -1
    ulen2 = count = 0
    for i, trigram in enumerate(ordered):
        found = trigram in wanted
        if lower >= 0 or found:
            if trigram not in lastpos:
                ulen2 += 1
                if found:
                    count += 1
            lastpos[trigram] = i
        if not found:
            continue
        upper = i
        if lower == -1:
            lower, ulen2 = i, 1
        current = count / (ulen1 + ulen2 - count)
        # Try moving the lower bound right, as pg_trgm does, for a greater similarity.
        tmp_count, tmp_ulen2, previous_lower = count, ulen2, lower
        for tmp_lower in range(lower, upper + 1):
            candidate = tmp_count / (ulen1 + tmp_ulen2 - tmp_count)
            if candidate > current:
                current, ulen2, lower, count = candidate, tmp_ulen2, tmp_lower, tmp_count
            at = ordered[tmp_lower]
            if lastpos.get(at) == tmp_lower:
                tmp_ulen2 -= 1
                if at in wanted:
                    tmp_count -= 1
        best = max(best, current)
        for tmp_lower in range(previous_lower, lower):
            at = ordered[tmp_lower]
            if lastpos.get(at) == tmp_lower:
                del lastpos[at]
    return best
