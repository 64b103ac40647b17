"""A home held open: its vector store, event log, taxonomy in force, the rerank's table and
the store's sync marks; where the catalog's changes go; the recommender over it; the shop's
words for genders and categories. Every use-case of engine/application/ reads these."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from engine.catalog.taxonomy import Taxonomy
from engine.catalog.taxonomy import key as category_key
from engine.errors import ConfigError, NotFoundError
from engine.events.eventlog import EventLog
from engine.popularity.upkeep import Marks
from engine.recommend.blended import Blender
from engine.recommend.columns import Columns
from engine.recommend.profile import FILE as PROFILE_FILE
from engine.recommend.profile import Profile
from engine.recommend.recommender import Recommender
from engine.settings import Settings
from engine.spaces.registry import missing_space, space_in_force
from engine.vectorstore.base import VectorStore
from engine.vocabulary.records import User
from engine.vocabulary.schema import CATEGORY, GENDER


class PhotoNetworks(Protocol):
    """A backbone's network as the store's vectors of it were made, embedding query photos
    (network inputs, N×3×H×W uint8) into unit rows: ingest/photos.py, for the engine loads
    no torch."""

    def __call__(
        self, store: VectorStore, backbone: str, pixels: NDArray[np.uint8]
    ) -> NDArray[np.float32]:
        """The photos' vectors."""
        ...


class Home:
    """One home held open, and what every use-case over it shares."""

    def __init__(
        self,
        settings: Settings,
        store: VectorStore,
        log: EventLog,
        taxonomy: Taxonomy,
        columns: Columns | None = None,
        marks: Marks | None = None,
        networks: PhotoNetworks | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.log = log
        self.taxonomy = taxonomy
        self.columns = columns
        self.marks: Marks = log if marks is None else marks  # the store's sync marks
        self.networks = networks  # what embeds a photo to search by (None: none here)
        # a worker serving a copy of the store: where the catalog's changes go (the home's
        # store, held alone meanwhile; serve/copies.py); None: to this store
        self.home_writer: Callable[[], AbstractContextManager[Home]] | None = None
        self._recommender: Recommender | None = None  # kept while taxonomy and table stay
        self._blender: Blender | None = None
        self._profile: tuple[int, Profile] | None = None  # the file's mtime, and it

    @contextmanager
    def writing(self) -> Iterator[Home]:
        """The home whose store takes the catalog's changes (items ingested, deleted or
        changed): this one, or for a worker serving a copy one over the home's store, after
        which every worker's copy is made again."""
        if self.home_writer is None:
            yield self
            return
        with self.home_writer() as home:
            yield home

    def space_in_force(self, asked: str | None) -> str:
        """The space asked for, else the home's default; NotFoundError for a compact space
        the store lacks."""
        dims = self.store.vector_dims()
        space = space_in_force(self.settings.home, asked, dims)
        missing = missing_space(space, dims)
        if missing:
            raise NotFoundError(missing)
        return space

    def blender(self) -> Blender:
        """The blended ranking over this home's store and log (made on first use)."""
        if self._blender is None or self._blender.taxonomy is not self.taxonomy:
            self._blender = Blender(self.store, self.log, self.taxonomy)
        return self._blender

    def profile(self) -> Profile | None:
        """The home's fitted ranking profile, if it has one (`fashionrec tune`): read again
        when its file changes (another process tuned)."""
        path = self.settings.home / PROFILE_FILE
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            return None
        if self._profile is None or self._profile[0] != stamp:
            found = Profile.load(self.settings.home)
            self._profile = None if found is None else (stamp, found)
        return None if self._profile is None else self._profile[1]

    def recommender(self, table: bool = False) -> Recommender:
        """The recommender; with `table` (a process that answers many queries) it reads the
        rerank's fields from a table in this process when it is the store's only writer
        (the embedded store), made on first use and then kept in step by the store."""
        if table and self.columns is None and self.store.exclusive and self.store.vector_dims():
            self.columns = Columns(self.store)
        held = self._recommender
        if held is None or held.taxonomy is not self.taxonomy or held.columns is not self.columns:
            held = self._recommender = Recommender(self.store, self.taxonomy, columns=self.columns)
        return held

    def known_user(self, user_id: str) -> User:
        """A user; NotFoundError when the log lacks them."""
        user = self.log.user(user_id)
        if user is None:
            raise NotFoundError(f"unknown user {user_id!r}")
        return user

    # the shop's words ------------------------------------------------------------------
    def gender(self, text: str) -> str:
        """A gender in the shop's words (an alias of the taxonomy's); ConfigError otherwise."""
        known = self.taxonomy.gender(text)
        if known is None:
            genders = ", ".join(self.taxonomy.all_genders)
            raise ConfigError(f"gender must be one of {genders}, got {text!r}")
        return known

    def category(self, text: str) -> str:
        """A category in the shop's words: the taxonomy's, one of its aliases, or one the
        catalog has (any case); ConfigError naming some of those otherwise."""
        known = self.taxonomy.category(text)
        if known is not None:
            return known
        stored = self.store.facet(CATEGORY) if self.store.vector_dims() else {}
        spelled = {category_key(c): c for c in stored}
        if category_key(text) in spelled:
            return spelled[category_key(text)]
        shown = sorted(stored) or list(self.taxonomy.categories)
        more = ", …" if len(shown) > 12 else ""
        raise ConfigError(
            f"unknown category {text!r}; the catalog has {', '.join(shown[:12])}{more}"
        )

    def filters(self, gender: str | None, category: str | None) -> dict[str, str]:
        """Payload conditions for a gender and category in the shop's words (None or empty:
        any); ConfigError for a value the catalog does not know."""
        equals: dict[str, str] = {}
        if gender:
            equals[GENDER] = self.gender(gender)
        if category:
            equals[CATEGORY] = self.category(category)
        return equals
