"""`DynamoPacer`: request and product budgets for one ACO tenant, shared by every
concurrent export invocation through the state table.

Window counters with conditional writes, in the state table under
`pk=aco-pace#{tenant}`:

- requests: a request takes a slot of the current second (`sk=s#{epoch second}`,
  `ADD n 1` if `n < max_rps`). A slot is only used in the first `send_fraction` of its
  second (0.7), so a request sent with it reaches ACO within the same second of ACO's
  clock, not on top of the next second's slots (the rest of the second is the margin
  for the request's travel and clock skew). When the second is full, `acquire` waits
  for the next one, for at most `max_wait` seconds in all.
- products (the license, `max_products_per_minute`): a product upsert of k items then
  takes up to k of the window that holds its second (`sk=m#{epoch minute}`; a
  window is `window_seconds`, 60). The slot is taken first, so the request goes out
  inside that window. When fewer than k are left the pacer grants what is left (the
  sink sends that many now and the rest later); when none are left it refuses at
  once and `resume_at()` says when the next window opens (the caller hands the
  items back rather than sleep past the invocation).

Items expire by TTL.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

TAKE_TRIES = 4  # conditional takes of a window's products before giving up for now


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
        window_seconds: int = 60,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if window_seconds < 1:
            raise ValueError("window_seconds must be >= 1")
        self._client = client
        self.table = table
        self.pk = f"aco-pace#{tenant}"
        self.max_rps = max_rps
        self.max_products_per_minute = max_products_per_minute
        self.max_wait = max_wait
        self.send_fraction = send_fraction
        self.window_seconds = window_seconds
        self._clock = clock
        self._sleep = sleep
        self._resume_at = 0.0

    def acquire(self, products: int = 0) -> int:
        """A request slot and, for a product upsert, up to `products` of the product
        budget. Returns what may be sent now: the products granted (1 for a request
        without products); 0 when the budget is out (see `resume_at`)."""
        second = self._request_slot()
        if second is None:
            self._resume_at = self._clock() + 1.0
            return 0
        if not products or not self.max_products_per_minute:
            return max(products, 1)
        window = second // self.window_seconds
        granted = self._take_products(window, products)
        if not granted:
            self._resume_at = float((window + 1) * self.window_seconds)
        return granted

    def resume_at(self) -> float:
        """When (epoch seconds) the budget that refused the last `acquire` frees up."""
        return self._resume_at

    def _take_products(self, window: int, products: int) -> int:
        limit = self.max_products_per_minute or 0
        sk = f"m#{window}"
        ttl = (window + 3) * self.window_seconds + 120
        want = min(products, limit)
        for _ in range(TAKE_TRIES):
            if self._take(sk, want, limit, ttl):
                return want
            want = min(want, limit - self._used(sk))
            if want <= 0:
                return 0
        return 0

    def _request_slot(self) -> int | None:
        """The second whose slot this request took, or None after `max_wait`."""
        now = self._clock()
        deadline = now + self.max_wait
        while True:
            second = int(now)
            took = now - second <= self.send_fraction and self._take(
                f"s#{second}", 1, self.max_rps, second + 120
            )
            # a slot taken too late in its second stays unused: the request could
            # reach ACO in the next one, on top of that second's slots
            if took and self._clock() - second <= self.send_fraction:
                return second
            if second + 1 > deadline:
                return None
            self._sleep(max(0.0, second + 1 - self._clock()) + 0.001)
            now = self._clock()

    def _used(self, sk: str) -> int:
        item = self._client.get_item(
            TableName=self.table,
            Key={"pk": {"S": self.pk}, "sk": {"S": sk}},
            ConsistentRead=True,
        ).get("Item")
        return int(item["n"]["N"]) if item and "n" in item else 0

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
