"""The shoppers' use-cases: users listed and shown with their purchases, purchases recorded
(a till's, the service's) and purchase logs imported, each event once."""

from __future__ import annotations

from datetime import tzinfo
from pathlib import Path

from engine.application.base import Home
from engine.application.documents import Bought, UserDetail, UserList
from engine.popularity.upkeep import catch_up
from engine.shoppers.purchaselog import ParsedLog, import_parsed, parse_log
from engine.shoppers.purchases import ImportSummary, Recorded, Row, record
from engine.vocabulary.geo import distance_km
from engine.vocabulary.schema import CATEGORY, ITEM_ID, NAME, PRICE, point_id


class ShopperUses(Home):
    """The shoppers' use-cases over a home."""

    def users(self, limit: int) -> UserList:
        """Some user ids and how many there are."""
        ids = self.log.user_ids()
        return UserList(ids[:limit], len(ids))

    def user(self, user_id: str) -> UserDetail:
        """A user's gender, trendiness and home, and their purchases with the category, the
        shop and its distance from home (`users show`)."""
        user = self.known_user(user_id)
        purchases = list(self.log.purchases(user_id))
        shops = {s.id: s for s in self.log.shops()}
        ids = sorted({p.item_id for p in purchases})
        payloads = {
            str(r.payload.get(ITEM_ID)): r.payload
            for r in self.store.retrieve([point_id(i) for i in ids])
        }
        bought = []
        for p in purchases:
            shop = shops.get(p.store_id or "")
            payload = payloads.get(p.item_id)
            price = None if payload is None else payload.get(PRICE)
            bought.append(
                Bought(
                    p.timestamp,
                    p.item_id,
                    None if payload is None else payload.get(CATEGORY),
                    p.store_id,
                    shop.name if shop else None,
                    distance_km(user.residence, shop.location) if shop else None,
                    name=None if payload is None else payload.get(NAME),
                    price=None if price is None else float(price),
                    in_catalog=payload is not None,
                )
            )
        return UserDetail(user.id, user.gender, user.trendiness, user.residence, bought)

    def record_purchases(self, rows: list[Row], source: str) -> Recorded:
        """Record purchases, all or nothing, each event once; first-time shoppers are
        created (engine.shoppers.purchases.record)."""
        if self.home_writer is None:
            return record(self.store, self.log, rows, source, table=self.columns, marks=self.marks)
        # a worker's copy follows the log: take these and any other worker's in one go
        done = record(self.store, self.log, rows, source, sync=False)
        catch_up(self.store, self.log, self.columns, self.marks)
        return done

    def import_purchases(
        self, path: Path, data: bytes | None = None, zone: tzinfo | None = None
    ) -> ImportSummary:
        """Import a purchase log CSV (the file, or `data` read from a file so named), all
        rows or none, through the same recording path as record_purchases."""
        return self.import_parsed(parse_log(path, data, zone))

    def import_parsed(self, parsed: ParsedLog) -> ImportSummary:
        """Import a purchase log already read (purchaselog.parse_log: a service reads a big
        upload off its event loop), all rows or none."""
        if self.home_writer is None:
            return import_parsed(self.store, self.log, parsed, table=self.columns, marks=self.marks)
        done = import_parsed(self.store, self.log, parsed, sync=False)
        catch_up(self.store, self.log, self.columns, self.marks)
        return done
