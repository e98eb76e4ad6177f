"""The Lua scripts in ``lua/``, registered once per process (redis-py sends EVALSHA, and EVAL
once after a Redis restart forgot them)."""

from __future__ import annotations

from pathlib import Path

from redis.commands.core import Script

from marketplace.redisconn import get_redis, made_once

LUA_DIR = Path(__file__).with_name("lua")


@made_once
def script(name: str) -> Script:
    return get_redis().register_script((LUA_DIR / f"{name}.lua").read_text())
