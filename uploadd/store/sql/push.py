"""Browsers' Web Push subscriptions."""

from __future__ import annotations

import attrs

from uploadd.store.interface import PushSubscription
from uploadd.store.sql.base import Cursor, SQLBase

_COLUMNS = "id, owner_id, endpoint, p256dh, auth, created_at"


class PushSubscriptions(SQLBase):
    """Where each user's Web Push notifications go."""

    async def add_push_subscription(self, subscription: PushSubscription) -> None:
        def run(cursor: Cursor) -> None:
            # The endpoint is one browser: whoever subscribed it before loses it.
            cursor.execute(
                "DELETE FROM push_subscriptions WHERE endpoint = ?",
                (subscription.endpoint,),
            )
            cursor.execute(
                f"INSERT INTO push_subscriptions ({_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?)",
                attrs.astuple(subscription),
            )

        await self._write(run)

    async def push_subscriptions_of(self, owner_id: int) -> list[PushSubscription]:
        rows = await self._query(
            f"SELECT {_COLUMNS} FROM push_subscriptions WHERE owner_id = ?"
            " ORDER BY created_at, id",
            owner_id,
        )
        return [PushSubscription(*row) for row in rows]

    async def delete_push_subscription(self, subscription_id: str) -> bool:
        def run(cursor: Cursor) -> bool:
            cursor.execute(
                "DELETE FROM push_subscriptions WHERE id = ?", (subscription_id,)
            )
            return cursor.rowcount > 0

        deleted: bool = await self._write(run)
        return deleted
