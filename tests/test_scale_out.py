"""Several ``helpline serve`` nodes on one PostgreSQL database agree on everything:
ticket ids, idempotency keys, rate limits, the first start."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import itertools
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from helpline.storage.admin import AdminStore
from helpline.storage.engine import make_engine

from .conftest import VALID_REQUEST, PostgresDatabases, organization_with_key
from .processes import ServerProcess

CREATES = 3000
RETRIED_SHARE = 5  # one create in five is sent twice, through two nodes
CONCURRENCY = 48


def start_nodes(
    count: int, url: str, workdir: Path, **environment: str
) -> list[ServerProcess]:
    """Start ``count`` nodes at the same moment; each is ready when this returns."""
    files = workdir / "files"
    files.mkdir(exist_ok=True)
    variables = {"HELPLINE_BLOB_DIR": str(files), **environment}

    def start(index: int) -> ServerProcess:
        node_dir = workdir / f"node-{index}"
        node_dir.mkdir()
        return ServerProcess(node_dir, "--database", url, environment=variables)

    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        starts = [pool.submit(start, index) for index in range(count)]
    nodes = [start.result() for start in starts if start.exception() is None]
    if len(nodes) < count:
        for node in nodes:
            node.stop()
        failed = next(start.exception() for start in starts if start.exception())
        raise RuntimeError("a node did not start") from failed
    return nodes


def add_key(url: str) -> dict[str, str]:
    """Headers with a new key of the organization ``acme``."""
    store = AdminStore(url)
    try:
        return organization_with_key(store)
    finally:
        store.close()


@pytest.fixture
def database(postgres: PostgresDatabases) -> Iterator[str]:
    name = postgres.create()
    yield postgres.url_of(name)
    postgres.drop(name)


def stored_tickets(url: str) -> list[tuple[int, str]]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT id, subject FROM tickets"))
            return [(int(row[0]), str(row[1])) for row in rows]
    finally:
        engine.dispose()


async def create_everywhere(
    nodes: list[ServerProcess], headers: dict[str, str]
) -> list[tuple[int, str, httpx.Response]]:
    """Send the creates round-robin over the nodes, every RETRIED_SHARE-th one
    twice at the same moment through two different nodes with one key.

    Returns (logical request number, node url, response) for every answer.
    """
    gate = asyncio.Semaphore(CONCURRENCY)
    answers: list[tuple[int, str, httpx.Response]] = []
    node_urls = itertools.cycle(node.url for node in nodes)

    async def send(client: httpx.AsyncClient, number: int, node: str) -> None:
        body = {**VALID_REQUEST, "subject": f"Scale-out ticket {number}"}
        extra = {"idempotency-key": f"create-{number}"}
        async with gate:
            response = await client.post(
                f"{node}/api/help/ticket", json=body, headers={**headers, **extra}
            )
        answers.append((number, node, response))

    limits = httpx.Limits(max_connections=CONCURRENCY * 2)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        sends = []
        for number in range(CREATES):
            first = next(node_urls)
            sends.append(send(client, number, first))
            if number % RETRIED_SHARE == 0:
                sends.append(send(client, number, next(node_urls)))
        await asyncio.gather(*sends)
    return answers


def test_three_nodes_store_every_acknowledged_create_exactly_once(
    database: str, tmp_path: Path
) -> None:
    headers = add_key(database)
    nodes = start_nodes(3, database, tmp_path)
    try:
        answers = asyncio.run(create_everywhere(nodes, headers))
    finally:
        for node in nodes:
            node.stop()

    assert {response.status_code for _, _, response in answers} == {200}
    ids_by_request: dict[int, set[int]] = collections.defaultdict(set)
    for number, _, response in answers:
        assert response.json()["success"] is True
        ids_by_request[number].add(response.json()["ticketId"])
    # Both sends of a retried create got the one ticket's id.
    assert all(len(ids) == 1 for ids in ids_by_request.values())
    acknowledged = {number: ids.pop() for number, ids in ids_by_request.items()}
    assert len(acknowledged) == CREATES
    assert len(set(acknowledged.values())) == CREATES

    stored = stored_tickets(database)
    assert len(stored) == CREATES
    subjects = dict(stored)
    for number, ticket_id in acknowledged.items():
        assert subjects[ticket_id] == f"Scale-out ticket {number}"
    assert max(subjects) < 2**31
    nodes_used = {node for _, node, _ in answers}
    assert len(nodes_used) == 3


def test_retry_through_another_node_replays_the_first_answer(
    database: str, tmp_path: Path
) -> None:
    headers = {**add_key(database), "idempotency-key": "once-only"}
    first_node, second_node = start_nodes(2, database, tmp_path)
    try:
        first = httpx.post(
            f"{first_node.url}/api/help/ticket", json=VALID_REQUEST, headers=headers
        )
        again = httpx.post(
            f"{second_node.url}/api/help/ticket", json=VALID_REQUEST, headers=headers
        )
        changed = httpx.post(
            f"{second_node.url}/api/help/ticket",
            json={**VALID_REQUEST, "subject": "Another subject"},
            headers=headers,
        )
    finally:
        first_node.stop()
        second_node.stop()

    assert again.json()["ticketId"] == first.json()["ticketId"]
    assert again.headers["idempotent-replayed"] == "true"
    assert changed.json()["failureReason"] == "Idempotency key reused"
    assert len(stored_tickets(database)) == 1


def test_rate_limit_buckets_are_shared_between_nodes(
    database: str, tmp_path: Path
) -> None:
    headers = add_key(database)
    nodes = start_nodes(
        2,
        database,
        tmp_path,
        HELPLINE_RATE_LIMIT_PER_SECOND="0.5",
        HELPLINE_RATE_LIMIT_BURST="10",
    )
    try:
        statuses = [
            httpx.post(
                f"{node.url}/api/help/ticket", json=VALID_REQUEST, headers=headers
            ).status_code
            for node in nodes * 15
        ]
    finally:
        for node in nodes:
            node.stop()

    # One bucket of 10 for the organization, not one per node (which would let 20
    # through); the slow refill may add one during the test.
    assert 10 <= statuses.count(200) <= 11
    assert statuses.count(429) == len(statuses) - statuses.count(200)


def test_nodes_starting_together_on_an_empty_database_migrate_and_bootstrap_once(
    postgres: PostgresDatabases, tmp_path: Path
) -> None:
    name = postgres.create_empty()
    url = postgres.url_of(name)
    try:
        nodes = start_nodes(3, url, tmp_path)
        for node in nodes:
            node.stop()
        printed_keys = sum("HELPLINE_API_KEY=hlk_" in node.stdout for node in nodes)
        engine = make_engine(url)
        with engine.connect() as connection:
            organizations = connection.execute(
                sa.text("SELECT name FROM organizations")
            ).all()
        engine.dispose()
    finally:
        postgres.drop(name)

    assert printed_keys == 1
    assert organizations == [("default",)]


def test_two_workers_of_one_serve_share_the_port_and_the_database(
    database: str, tmp_path: Path
) -> None:
    headers = add_key(database)
    files = tmp_path / "files"
    node = ServerProcess(
        tmp_path,
        "--database",
        database,
        "--workers",
        "2",
        environment={"HELPLINE_BLOB_DIR": str(files)},
    )
    try:
        answers = [
            httpx.post(
                f"{node.url}/api/help/ticket", json=VALID_REQUEST, headers=headers
            )
            for _ in range(40)
        ]
    finally:
        node.stop()

    assert {answer.status_code for answer in answers} == {200}
    assert len(stored_tickets(database)) == 40
    assert "with 2 workers" in node.stderr


def test_more_than_one_worker_on_sqlite_is_refused(tmp_path: Path) -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "helpline", "serve", "--workers", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert refused.returncode == 2
    assert "--workers above 1 needs PostgreSQL" in refused.stderr
