"""Schemathesis hooks (``SCHEMATHESIS_HOOKS``) that add the bad input of issue 15 to the fuzzing:
bodies with lone surrogates and NUL in strings and keys, nesting past the depth limit, thousands
of unknown keys, lifetimes past the bound, and the same in ``Cancel-After`` headers. Hypothesis
picks a mutation (or none) for each generated case, so failures shrink and reproduce by seed.

Every mutated request and its status is appended to ``FUZZ_HOOKS_LOG`` for the test to count.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import schemathesis
from hypothesis import strategies as st
from schemathesis.transport.serialization import serialize_json

SURROGATE = "\ud800"
# Schemathesis keeps and re-validates every case in process, and its report cannot encode a lone
# surrogate: cases carry this marker instead, and the JSON serializer below writes it as the
# escape "\ud800" on the wire (what the server decodes into a lone surrogate).
MARKER = "@@lone-surrogate@@"


def _first_string_to(value: str) -> Callable[[Any], Any]:
    def mutate(body: Any) -> Any:
        if isinstance(body, dict):
            for key, item in body.items():
                if isinstance(item, str):
                    return {**body, key: item + value}
                if isinstance(item, dict):
                    return {**body, key: mutate(item)}
            return {**body, "x" + value: value}
        return body

    return mutate


def _nested(body: Any) -> Any:
    deep: Any = "x"
    for _ in range(200):  # past the limit of 64; json.dumps itself stops near 1000
        deep = [deep]
    return {**body, "input": {"deep": deep}} if isinstance(body, dict) else body


def _many_keys(body: Any) -> Any:
    keys = {f"unknown_{i}": i for i in range(5000)}
    if not isinstance(body, dict):
        return body
    given = body.get("input")
    return {**body, "input": {**(given if isinstance(given, dict) else {}), **keys}}


def _metadata(body: Any) -> Any:
    # Multipart bodies of POST /v1/files: the metadata form field is JSON text (pure ASCII here).
    if isinstance(body, dict) and "content" in body:
        return {**body, "metadata": json.dumps({"k": SURROGATE})}
    return body


BODY_MUTATIONS: dict[str, Callable[[Any], Any]] = {
    "surrogate": _first_string_to(MARKER),
    "nul": _first_string_to("\x00"),
    "surrogate-key": lambda b: {**b, MARKER: 1} if isinstance(b, dict) else b,
    "deep": _nested,
    "many-keys": _many_keys,
    "lifetime": lambda b: {**b, "lifetime": "99999999999h"} if isinstance(b, dict) else b,
    "metadata": _metadata,
}
HEADER_MUTATIONS = {"99999999999h", "9" * 5000, "1e400"}


@schemathesis.hook
def flatmap_body(ctx: Any, body: Any) -> Any:
    choices = st.sampled_from(sorted(BODY_MUTATIONS))
    return st.one_of(
        st.just(body),
        choices.map(lambda name: {**BODY_MUTATIONS[name](body), "__mutation": name})
        if isinstance(body, dict)
        else st.just(body),
    )


@schemathesis.hook
def flatmap_headers(ctx: Any, headers: Any) -> Any:
    return st.one_of(
        st.just(headers),
        st.sampled_from(sorted(HEADER_MUTATIONS)).map(
            lambda value: {**(headers or {}), "Cancel-After": value}
        ),
    )


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
    # The marker says which mutation a body got: sent as a header the server ignores, not in
    # the body.
    if isinstance(case.body, dict) and "__mutation" in case.body:
        name = case.body["__mutation"]
        case.body = {k: v for k, v in case.body.items() if k != "__mutation"}
        case.headers = {**(case.headers or {}), "X-Fuzz-Mutation": name}


@schemathesis.hook
def after_call(ctx: Any, case: Any, response: Any) -> None:
    path = os.environ.get("FUZZ_HOOKS_LOG")
    headers = case.headers or {}
    kind = headers.get("X-Fuzz-Mutation") or ("header" if "Cancel-After" in headers else "")
    if path and kind:
        with open(path, "a") as log:
            log.write(f"{kind} {case.method} {case.path} {response.status_code}\n")


@schemathesis.serializer("application/json")
def json_with_lone_surrogates(ctx: Any, value: Any) -> bytes:
    # Schemathesis's own rules for what a JSON body is (bytes as they are, null, binary as text).
    payload = serialize_json(value)
    if "data" in payload:
        return bytes(payload["data"])
    return json.dumps(payload["json"]).replace(MARKER, "\\ud800").encode()
