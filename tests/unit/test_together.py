"""``infrastructure.async_reads.Together``: lookups made while a statement is out wait for
it, then share the next one; each gets its own answer, errors reach exactly the lookups of
the call that failed, and a cancelled lookup costs the others nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from infrastructure.async_reads import Together


class Answers:
    """An answer function that records its calls and can be held until released."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.hold = asyncio.Event()
        self.hold.set()
        self.fail_next = False

    async def __call__(self, queries: Sequence[int]) -> list[str]:
        self.calls.append(list(queries))
        await self.hold.wait()
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("the server went away")
        return [f"answer {q}" for q in queries]


async def settle() -> None:
    """Let every ready task run until it waits."""
    for _ in range(5):
        await asyncio.sleep(0)


def test_lookups_made_while_one_is_out_share_the_next_call() -> None:
    async def scenario() -> None:
        answers = Answers()
        together: Together[int, str] = Together(answers)
        answers.hold.clear()
        first = asyncio.ensure_future(together(0))
        await settle()  # the first call is out, held
        rest = [asyncio.ensure_future(together(n)) for n in range(1, 11)]
        await settle()
        assert answers.calls == [[0]]  # the others wait for it

        answers.hold.set()
        assert await first == "answer 0"
        assert await asyncio.gather(*rest) == [f"answer {n}" for n in range(1, 11)]
        assert answers.calls == [[0], list(range(1, 11))]

    asyncio.run(scenario())


def test_a_lookup_alone_is_answered_at_once() -> None:
    async def scenario() -> None:
        answers = Answers()
        together: Together[int, str] = Together(answers)
        assert await together(7) == "answer 7"
        assert await together(8) == "answer 8"
        assert answers.calls == [[7], [8]]

    asyncio.run(scenario())


def test_an_error_reaches_the_lookups_of_its_call_only() -> None:
    async def scenario() -> None:
        answers = Answers()
        together: Together[int, str] = Together(answers)
        answers.hold.clear()
        answers.fail_next = True
        failing = [asyncio.ensure_future(together(n)) for n in range(2)]
        await settle()  # the call for 0 and 1 is out, and will fail
        later = [asyncio.ensure_future(together(n)) for n in range(2, 4)]
        await settle()
        answers.hold.set()

        for lookup in failing:
            with pytest.raises(ConnectionError):
                await lookup
        assert await asyncio.gather(*later) == ["answer 2", "answer 3"]
        assert answers.calls == [[0, 1], [2, 3]]

    asyncio.run(scenario())


def test_a_cancelled_lookup_leaves_the_others_answered() -> None:
    async def scenario() -> None:
        answers = Answers()
        together: Together[int, str] = Together(answers)
        answers.hold.clear()
        lookups = [asyncio.ensure_future(together(n)) for n in range(3)]
        await settle()
        lookups[1].cancel()  # a client that went away
        answers.hold.set()

        assert await lookups[0] == "answer 0"
        assert await lookups[2] == "answer 2"
        assert lookups[1].cancelled()
        assert await together(5) == "answer 5"  # and it still answers

    asyncio.run(scenario())
