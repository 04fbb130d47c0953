"""Wiring of one process: the settings plus everything built from them once."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property

from schemas.catalogue import SchemaCatalogue
from schemas.codec import Codec
from schemas.registry import RegistryClient
from topics.catalog import Catalog
from topics.circle import Circle, RosterKey, load_circle
from topics.clock import Clock, FileClock, SystemClock
from topics.provenance import Verifier
from topics.settings import Settings
from topics.validation import Validator

log = logging.getLogger(__name__)


@dataclass
class Context:
    settings: Settings
    circle: Circle
    schemas: SchemaCatalogue
    topics: Catalog
    clock: Clock = field(default_factory=SystemClock)

    @cached_property
    def registry(self) -> RegistryClient:
        return RegistryClient(self.settings.registry_url)

    @cached_property
    def codec(self) -> Codec:
        return Codec(self.schemas, self.registry)

    @cached_property
    def validator(self) -> Validator:
        return Validator(self.circle, self.schemas, self.clock, self.settings.person_salt)

    @cached_property
    def verifier(self) -> Verifier:
        """One per process: the roster's public keys loaded once, the roster keys file re-read when
        it changes (a rotation needs no restart)."""
        s = self.settings

        def roster() -> list[RosterKey]:
            return load_circle(s.circle_file, s.circle, s.roster_keys_path).all_keys()

        # read now, not from the circle loaded at start: keys made or rotated since then count
        return Verifier(roster(), reload=roster, watch=s.roster_keys_path)

    @cached_property
    def provenance_required(self) -> bool:
        """Whether input records must carry a valid signature of their source city (TONGCHENG_PROVENANCE);
        logs a warning, once, when the checks are off."""
        if self.settings.provenance == "off":
            log.warning(
                "TONGCHENG_PROVENANCE=off: input signatures are NOT checked; any sender may claim any city "
                "(for benchmarks only)"
            )
            return False
        return True


def build_context(settings: Settings, clock: Clock | None = None) -> Context:
    return Context(
        settings=settings,
        circle=load_circle(settings.circle_file, settings.circle, settings.roster_keys_path),
        schemas=SchemaCatalogue(),
        topics=Catalog(settings.topic_prefix, settings.replication_factor, settings.min_insync_replicas),
        clock=clock
        or (FileClock(str(settings.clock_file)) if settings.clock_file else SystemClock(settings.clock_offset_seconds)),
    )
