"""The key cache: fresh keys from memory, stale ones and unknown prefixes looked up."""

from __future__ import annotations

import asyncio

from helpline.domain.keys import ALL_PERMISSIONS, ApiKey
from helpline.http.keycache import KeyCache

KEY = ApiKey(
    id=1,
    organization_id=1,
    organization_name="acme",
    prefix="abcdefghij",
    digest="0" * 64,
    user_email="ops@acme.example",
    permissions=ALL_PERMISSIONS,
    revoked=False,
)


class Lookups:
    """A key table of one key, counting the lookups made."""

    def __init__(self) -> None:
        self.made: list[str] = []
        self.stored: dict[str, ApiKey] = {KEY.prefix: KEY}

    async def find(self, prefix: str) -> ApiKey | None:
        self.made.append(prefix)
        return self.stored.get(prefix)


def test_a_found_key_is_served_from_memory_until_it_expires() -> None:
    lookups, now = Lookups(), [100.0]
    cache = KeyCache(lookups.find, ttl_seconds=2, clock=lambda: now[0])

    async def exercise() -> list[ApiKey | None]:
        found = [await cache.find(KEY.prefix), await cache.find(KEY.prefix)]
        lookups.stored.clear()  # revoked and gone, say
        now[0] += 2.5
        found.append(await cache.find(KEY.prefix))
        return found

    assert asyncio.run(exercise()) == [KEY, KEY, None]
    assert lookups.made == [KEY.prefix, KEY.prefix]


def test_unknown_prefixes_are_never_remembered() -> None:
    lookups = Lookups()
    cache = KeyCache(lookups.find, ttl_seconds=60)

    async def exercise() -> None:
        for _ in range(3):
            assert await cache.find("zzzzzzzzzz") is None

    asyncio.run(exercise())

    assert lookups.made == ["zzzzzzzzzz"] * 3


def test_a_full_cache_forgets_its_oldest_keys_first() -> None:
    lookups = Lookups()
    for number in range(20):
        lookups.stored[f"key{number:07d}"] = KEY
    cache = KeyCache(lookups.find, ttl_seconds=60, max_keys=10)

    async def exercise() -> None:
        for number in range(20):
            await cache.find(f"key{number:07d}")
        lookups.made.clear()
        await cache.find("key0000019")
        await cache.find("key0000000")

    asyncio.run(exercise())

    assert lookups.made == ["key0000000"]


def test_a_lifetime_of_zero_looks_every_key_up() -> None:
    lookups = Lookups()
    cache = KeyCache(lookups.find, ttl_seconds=0)

    async def exercise() -> None:
        await cache.find(KEY.prefix)
        await cache.find(KEY.prefix)

    asyncio.run(exercise())

    assert lookups.made == [KEY.prefix, KEY.prefix]
