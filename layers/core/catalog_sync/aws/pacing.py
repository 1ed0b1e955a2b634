"""`DynamoPacer`: request and product budgets for one ACO tenant, shared by every
concurrent export invocation through the state table.

Window counters with conditional writes: a request takes a slot of the current second
(`pk=aco-pace#{tenant}`, `sk=s#{epoch second}`, `ADD n 1` if `n < max_rps`); a
product upsert batch of k items also takes k of the current minute
(`sk=m#{epoch minute}`, `ADD n k` if `n <= max_per_minute - k`). Items expire by TTL. A slot is
only used in the first `send_fraction` of its second (0.7), so a request sent with it
reaches ACO within the same second of ACO's clock, not on top of the next second's
slots (the rest of the second is the margin for the request's travel and clock skew).
When the second is full, `acquire` waits for the next second, for at most
`max_wait` seconds in all; when the minute's product budget is out it returns False
at once (the sink hands the items back, `retry`, rather than sleep past the
invocation).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError


class DynamoPacer:
    def __init__(
        self,
        client: Any,
        table: str,
        tenant: str,
        *,
        max_rps: int = 2,
        max_products_per_minute: int | None = None,
        max_wait: float = 5.0,
        send_fraction: float = 0.7,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self.table = table
        self.pk = f"aco-pace#{tenant}"
        self.max_rps = max_rps
        self.max_products_per_minute = max_products_per_minute
        self.max_wait = max_wait
        self.send_fraction = send_fraction
        self._clock = clock
        self._sleep = sleep

    def _take(self, sk: str, amount: int, limit: int, ttl: int) -> bool:
        try:
            self._client.update_item(
                TableName=self.table,
                Key={"pk": {"S": self.pk}, "sk": {"S": sk}},
                UpdateExpression="ADD #n :k SET #t = :ttl",
                ConditionExpression="attribute_not_exists(#n) OR #n <= :most",
                ExpressionAttributeNames={"#n": "n", "#t": "ttl"},
                ExpressionAttributeValues={
                    ":k": {"N": str(amount)},
                    ":most": {"N": str(limit - amount)},
                    ":ttl": {"N": str(ttl)},
                },
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def acquire(self, products: int = 0) -> bool:
        now = self._clock()
        if products and self.max_products_per_minute:
            k = min(products, self.max_products_per_minute)
            minute = int(now // 60)
            if not self._take(f"m#{minute}", k, self.max_products_per_minute, minute * 60 + 180):
                return False
        deadline = now + self.max_wait
        while True:
            second = int(now)
            if now - second <= self.send_fraction and self._take(
                f"s#{second}", 1, self.max_rps, second + 120
            ):
                after = self._clock()
                if after - second <= self.send_fraction:
                    return True
                # the slot came too late in its second: the request could reach ACO in
                # the next one, on top of that second's slots; it stays unused
            if second + 1 > deadline:
                return False
            self._sleep(max(0.0, second + 1 - self._clock()) + 0.001)
            now = self._clock()
