"""The recommendation use-cases: the ranking asked for with the home's defaults, items
like an item, a user's lists, items like a photo; each list described for a person (name,
price, link, stock, popularity as of now)."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine.application.base import Home
from engine.application.documents import Ranked, Recommended, Vectors
from engine.catalog.framing import INPUT_SIZE, Framing
from engine.catalog.inputs import PixelLimitError, load_photo, unreadable
from engine.errors import ConfigError, NotFoundError
from engine.events.trending import PopularitySettings
from engine.recommend.blended import BLENDED
from engine.recommend.profile import Profile
from engine.recommend.recommender import PHOTO, Params
from engine.recommend.rerank import Recommendation
from engine.recommend.strategies import strategy_for
from engine.spaces.registry import load_space, source_weights
from engine.vectorstore.base import Filter
from engine.vocabulary.backbones import BACKBONES, is_compact, source_of
from engine.vocabulary.schema import (
    FRAMING,
    IN_STOCK,
    ITEM_ID,
    NAME,
    POPULARITY,
    PRICE,
    URL,
    point_id,
)


class RankingUses(Home):
    """The recommendation use-cases over a home."""

    def in_force(self, params: Params) -> tuple[Params, PopularitySettings]:
        """The ranking asked for, with this home's default space and popularity mode where
        none was given and the gender and category in the taxonomy's words (checked once,
        as the Params are made); NotFoundError for a compact space the store lacks. With the
        popularity settings it ranks by (read once)."""
        space = self.space_in_force(params.space)
        settings = self.log.popularity_settings()
        mode = params.popularity or settings.mode
        gender = None if params.gender is None else self.gender(params.gender)
        category = None if not params.category else self.category(params.category)
        asked = replace(params, space=space, popularity=mode, gender=gender, category=category)
        return replace(asked, profile=self._profile_for(asked)), replace(settings, mode=mode)

    def _profile_for(self, params: Params) -> Profile | None:
        """The home's fitted profile when it ranks this query: asked for (`--preset tuned`,
        ConfigError without one), or by default when no weights were given, the rerank is
        the client's and nothing diversifies."""
        if params.tuned == "never":
            return None
        profile = self.profile()
        if params.tuned == "always":
            if profile is None:
                raise ConfigError("--preset tuned: no fitted profile; run `fashionrec tune`")
            return profile
        plain = params.rerank == "client" and params.diversity == 0
        if profile is None or not plain or profile.fitted.get("space") != params.space:
            return None
        return profile

    def similar(self, item_id: str, params: Params) -> Recommended:
        """Items like this one, every term of each (`recommend --item`): blended by the
        home's fitted profile when it ranks, else reranked."""
        asked, settings = self.in_force(params)
        if asked.profile is not None:
            days = settings.half_life_days
            recs = self.blender().for_item(item_id, asked, asked.profile, days)
        else:
            recs = self.recommender().for_item(item_id, asked)
        return self._recommended(asked, settings, [Ranked(f"like {item_id}", recs)], item=item_id)

    def for_user(self, user_id: str, params: Params) -> Recommended:
        """Top-k after each of a user's purchases, and one merged list (`recommend --user`)."""
        asked, settings = self.in_force(params)
        user = self.known_user(user_id)
        purchases = list(self.log.purchases(user.id))
        if asked.profile is not None:
            days = settings.half_life_days
            recs = self.blender().for_user(user, purchases, asked, asked.profile, days)
            return self._recommended(asked, settings, [Ranked("merged", recs)], user=user)
        result = self.recommender().for_user(user, purchases, asked)
        lists = [Ranked(f"after {p.item_id}", recs) for p, recs in result.per_purchase]
        merged = [*lists, Ranked("merged", result.merged)]
        return self._recommended(asked, settings, merged, user=user)

    def search_photo(self, photo: Path | bytes, params: Params, name: str) -> Recommended:
        """Items like a photo (a file, or an upload's bytes; `name` says which in errors),
        embedded as the store's vectors of the searched space were made: of the gender
        asked for, else any; t as given (0.5 by default). `recommend --image` and
        `POST /search`."""
        asked, settings = self.in_force(replace(params, tuned="never"))  # not yet blended
        vector = self.photo_vector(photo, asked.searched, name)
        recs = self.recommender().for_vector(vector, asked)
        return self._recommended(asked, settings, [Ranked("like the photo", recs)], item=PHOTO)

    def warm_search(self) -> str | None:
        """Load the network a search by photo of the default space runs (a blank photo
        through it), so that no shopper waits for it: its backbone, or None when the store
        holds no vectors yet, or none of a network's size."""
        dims = self.store.vector_dims()
        if self.networks is None or not dims:
            return None
        backbone = source_of(self.space_in_force(None))
        spec = BACKBONES.get(backbone)
        if spec is None or dims.get(backbone, spec.dim) != spec.dim:
            return None  # no network of ours made these vectors: nothing to search them with
        self.networks(self.store, backbone, np.zeros((1, 3, INPUT_SIZE, INPUT_SIZE), np.uint8))
        return backbone

    def photo_vector(self, photo: Path | bytes, space: str, name: str) -> NDArray[np.float32]:
        """A photo's vector in a space of the store (unit length): framed as the store's
        photos were, through the backbone's network (self.networks), then a compact
        space's projection."""
        if self.networks is None:
            raise ConfigError("search by photo needs the networks, which this process lacks")
        if space not in self.store.vector_dims():
            raise NotFoundError(f"the store has no {space} vectors to search")
        backbone = source_of(space)
        try:
            pixels = load_photo(
                photo if isinstance(photo, Path) else io.BytesIO(photo), self._framing(backbone)
            )
        except PixelLimitError as exc:
            raise ConfigError(f"{name}: {exc}; send a smaller photo") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{name}: {unreadable(exc)}; send a JPEG or PNG photo") from None
        vector = self.networks(self.store, backbone, pixels[None])[0]
        if is_compact(space):
            compact = load_space(self.settings.home, space)
            if compact is None:
                raise NotFoundError(f"compact space {space} has no projection in this home")
            vector = compact.projection(vector[None])[0]
        return np.asarray(vector, dtype=np.float32)

    def _framing(self, backbone: str) -> Framing:
        """How the store framed its photos for this backbone (an item's recorded framing;
        items ingested before it was recorded: letterbox)."""
        held = self.store.scroll([FRAMING], Filter(has_vector=backbone), page=1)
        first = next(iter(held), None)
        found = None if first is None else first.payload.get(FRAMING)
        return "center-crop" if found == "center-crop" else "letterbox"

    def _described(
        self, lists: list[Ranked], settings: PopularitySettings, blended: bool
    ) -> list[Ranked]:
        """The lists with each item's name, price, link and stock from its payload (one
        read for every listed item), and its popularity as of now: the stored trending
        score is referred to the log's anchor (it ranks as the decayed one does), and a
        person reads the decayed purchase count (a blended list carries it already); in
        all-time mode, the all-time popularity."""
        ids = sorted({r.item_id for ranked in lists for r in ranked.recommendations})
        payloads = {
            str(r.payload.get(ITEM_ID)): r.payload
            for r in self.store.retrieve([point_id(i) for i in ids])
        }
        scale = 1.0
        if settings.mode == "trending" and not blended:
            scale = self.log.trend_scale(datetime.now(UTC), settings.half_life_days)

        def described(rec: Recommendation) -> Recommendation:
            payload = payloads.get(rec.item_id, {})
            price = payload.get(PRICE)
            popularity = rec.popularity * scale
            if blended and settings.mode == "all-time":
                popularity = float(payload.get(POPULARITY) or 0.0)
            return replace(
                rec,
                popularity=popularity,
                name=payload.get(NAME),
                price=None if price is None else float(price),
                url=payload.get(URL),
                in_stock=payload.get(IN_STOCK),
            )

        return [Ranked(r.list, [described(rec) for rec in r.recommendations]) for r in lists]

    def _recommended(
        self, params: Params, settings: PopularitySettings, lists: list[Ranked], **header: Any
    ) -> Recommended:
        space = params.searched
        vectors = Vectors(
            space,
            self.store.provenance(space),
            self.taxonomy.name,
            source_weights(self.store, space).get("source"),
        )
        return Recommended(
            vectors,
            params.weights,
            settings.text(),
            self._described(lists, settings, params.profile is not None),
            normalise=params.normalise,
            strategy=BLENDED if params.profile is not None else strategy_for(params).name,
            profile=params.profile,
            **header,
        )
