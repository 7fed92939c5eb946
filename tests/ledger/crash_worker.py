"""Load generator for the crash-safety test: ``python -m tests.ledger.crash_worker DSN START_STAN``.

Runs purchases and top-ups on the seeded cards from many coroutines and prints one JSON line per reply
(``{"key": ..., "rc": ..., "rrn": ...}``, flushed) only after ``execute`` returned, i.e. after the commit:
the parent kills it with SIGKILL mid-load and checks that every printed reply is in the ledger."""

from __future__ import annotations

import asyncio
import json
import sys

from tests.ledger.reqs import request
from tests.support.ledger_db import CARD, CARD2, HALL_TID, LOW, open_test_store


async def main(dsn: str, start: int) -> None:
    store = await open_test_store(dsn)
    print(json.dumps({"ready": True}), flush=True)
    counter = iter(range(start, start + 1_000_000))

    async def worker(n: int) -> None:
        card = (CARD, CARD2, LOW)[n % 3]
        while True:
            stan = next(counter)
            if stan % 5 == 0:
                req = request("topup", stan % 1_000_000, card=card, amount=7, tid=HALL_TID)
            else:
                req = request("purchase", stan % 1_000_000, card=card, amount=3)
            out = await store.execute(req)
            print(json.dumps({"key": "|".join(req.dup_key), "rc": out.rc, "rrn": out.fields["37"]}), flush=True)

    await asyncio.gather(*(worker(n) for n in range(24)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
