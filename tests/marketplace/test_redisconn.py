"""The process-wide Redis client when many request threads ask for it at once."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from marketplace.redisconn import get_redis, made_once
from marketplace.scheduling import scripts

THREADS = 50
ROUNDS = 10


def _together(call: Any) -> list[Any]:
    """``call()`` from THREADS threads released at the same moment."""
    start = threading.Barrier(THREADS)

    def one(_: int) -> Any:
        start.wait()
        return call()

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(one, range(THREADS)))


@pytest.fixture
def fresh_clients() -> Iterator[None]:
    """The state of a web process that has not talked to Redis yet."""
    get_redis.cache_clear()
    scripts.script.cache_clear()
    yield
    get_redis.cache_clear()
    scripts.script.cache_clear()


def test_threads_racing_to_the_first_client_all_get_the_same_one(fresh_clients: None) -> None:
    # Two clients would mean one of them is dropped while a thread uses it, and a dropped
    # redis.Redis closes its pool: the connection that thread is reading from is cut (a 500).
    # A short GIL switch interval makes the threads interleave inside the client's construction
    # as they do under load (with functools.cache every round here made several clients).
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(ROUNDS):
            get_redis.cache_clear()
            clients = _together(get_redis)
            assert len({id(client) for client in clients}) == 1
            assert clients[0] is get_redis()
    finally:
        sys.setswitchinterval(interval)


def test_a_first_burst_of_commands_loses_no_connection(fresh_clients: None) -> None:
    def incr() -> int:
        pipe = get_redis().pipeline()
        pipe.incr("mk:test:burst")
        pipe.expire("mk:test:burst", 60)
        count, _ = pipe.execute()
        return int(count)

    assert sorted(_together(incr)) == list(range(1, THREADS + 1))


def test_lua_scripts_are_registered_once_on_the_shared_client(fresh_clients: None) -> None:
    registered = _together(lambda: scripts.script("push"))
    assert len({id(script) for script in registered}) == 1
    assert registered[0].registered_client is get_redis()


def test_made_once_makes_one_object_per_argument_and_forgets_on_clear() -> None:
    made: list[str] = []
    lock = threading.Lock()

    @made_once
    def make(name: str) -> object:
        with lock:
            made.append(name)
        threading.Event().wait(0.01)  # a slow first call widens the race
        return object()

    firsts = _together(lambda: make("a"))
    assert made == ["a"]
    assert len({id(first) for first in firsts}) == 1
    assert make("b") is not firsts[0]
    assert made == ["a", "b"]
    make.cache_clear()
    assert make("a") is not firsts[0]
    assert made == ["a", "b", "a"]
