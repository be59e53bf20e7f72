"""The request log: one JSON line a request, written a loop turn at a time, in order."""

from __future__ import annotations

import asyncio
import json
import logging
import select
import sys
from collections.abc import Iterator

import pytest
import structlog

from helpline.observability import configure_logging, log_request


class RecordingStream:
    """What ``sys.stderr.buffer`` was asked to write, one entry a write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.writes.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in b"".join(self.writes).splitlines()]


class RecordingStderr:
    def __init__(self) -> None:
        self.buffer = RecordingStream()


@pytest.fixture
def stderr(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingStream]:
    recording = RecordingStderr()
    monkeypatch.setattr(sys, "stderr", recording)
    configure_logging(log_format="json")
    yield recording.buffer
    monkeypatch.undo()
    configure_logging(log_format="console", level=logging.WARNING)


def test_lines_of_one_loop_turn_go_out_in_one_write_in_order(
    stderr: RecordingStream,
) -> None:
    async def serve() -> int:
        for number in range(5):
            log_request(request_id=f"r{number}", status=200)
        waiting = len(stderr.writes)
        await asyncio.sleep(0)  # the end of this turn
        await asyncio.sleep(0)
        return waiting

    written_before_the_turn_ended = asyncio.run(serve())

    assert written_before_the_turn_ended == 0
    assert len(stderr.writes) == 1
    lines = stderr.lines()
    assert [line["request_id"] for line in lines] == [f"r{n}" for n in range(5)]
    assert {line["event"] for line in lines} == {"request"}
    assert all(str(line["timestamp"]).endswith("Z") for line in lines)


def test_other_events_come_after_the_request_lines_before_them(
    stderr: RecordingStream,
) -> None:
    async def serve() -> None:
        log_request(request_id="first", status=200)
        structlog.get_logger("helpline.test").error("commit_failed")
        log_request(request_id="second", status=503)
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    asyncio.run(serve())

    order = [line.get("request_id", line["event"]) for line in stderr.lines()]
    assert order == ["first", "commit_failed", "second"]


def test_a_write_never_splits_a_line_or_passes_pipe_buf(
    stderr: RecordingStream,
) -> None:
    async def serve() -> None:
        for number in range(200):
            log_request(request_id=f"request-{number:04}", path="/api/help/ticket")
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    asyncio.run(serve())

    assert len(stderr.writes) > 1
    for write in stderr.writes:
        assert len(write) <= select.PIPE_BUF
        assert write.endswith(b"\n")
    assert len(stderr.lines()) == 200


def test_outside_an_event_loop_a_line_is_written_at_once(
    stderr: RecordingStream,
) -> None:
    log_request(request_id="cli", status=200)

    assert [line["request_id"] for line in stderr.lines()] == ["cli"]


def test_a_loop_closed_before_its_flush_leaves_the_next_loop_flushing(
    stderr: RecordingStream,
) -> None:
    first = asyncio.new_event_loop()

    async def log_and_stop() -> None:
        log_request(request_id="last of its loop", status=200)
        first.stop()  # this turn is the loop's last: its flush never runs

    async def serve() -> None:
        log_request(request_id="next loop", status=200)
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    task = first.create_task(log_and_stop())
    first.run_forever()
    first.close()
    assert task.done()
    assert stderr.writes == []
    asyncio.run(serve())

    order = [line["request_id"] for line in stderr.lines()]
    assert order == ["last of its loop", "next loop"]
