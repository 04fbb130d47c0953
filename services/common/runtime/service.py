"""The processor: the batch path's delivery order, the DLQ policy, and the state's tables."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar, cast, overload

import faust
import msgspec
from faust.types import TP

from schemas.catalogue import AvroRecord
from schemas.errors import Reason, Rejected, Unavailable
from schemas.events import Meta
from schemas.structs import BY_SCHEMA, Event, plain, typed
from services.common.runtime.app import CHANGELOG_CONFIG, store_options
from services.common.runtime.delivery import Abandoned, Outputs
from services.common.runtime.encoding import Layout, Typed
from services.common.runtime.outcomes import E, Handle, OnBatch, Outcome, ProgressDoc, Record, Verdict
from services.common.runtime.progress import ProgressCollector
from services.common.runtime.tables import Progress, StateTable
from services.common.runtime.transport import Consumer
from topics import cloudevents
from topics.catalog import EVENT_TYPES, OWNER
from topics.circle import load_circle, service_signer
from topics.context import Context
from topics.dlq import DeadLetters, Headers
from topics.metrics import Metrics
from topics.provenance import Signer

log = logging.getLogger("tongcheng")


D = TypeVar("D")
S = TypeVar("S", bound=msgspec.Struct)


class Processor:
    """The policy every batch follows: decode, apply, emit; reject to the DLQ and carry on.

    A batch's effects reach Kafka in a fixed order, so a worker that dies at any point leaves
    nothing half done that a restart cannot mend:

    1. the derived events and dead letters, retried until the broker acknowledges them;
    2. then the state: the table writes, changelog then store (with the changelog offsets it
       reached, so that a restart on rocksdb reads only the changelog after them), retried likewise;
    3. then each input partition's `Progress` (its next offset and outcome counts), likewise;
    4. then the offsets, committed to the consumer group (in the background, while the next
       batch is processed; a stop or a revocation waits for the commit).

    State never runs ahead of the events it caused. If the worker dies between 1 and 2, the
    restarted worker still has the old state, applies the records again and emits the same events
    (their ids derive from what they say; a dead letter is keyed by its source coordinates). If it
    dies between 2 and 3, the records are applied again to a state that has them: duplicates by
    event_id, which emit nothing. If it dies between 3 and 4, the progress says where processing
    stands, and the records delivered again below it are skipped. A clean stop finishes the batch in hand, so nothing is
    processed twice.

    A transient fault (`Unavailable`: the registry cannot be reached) is not the data's fault: the
    batch is dropped uncommitted and tried again after a pause, consumption waiting meanwhile.

    Batches and timers of one processor run one at a time (`exclusive`), so a batch never sends
    or commits another one's half-built state.
    """

    FIRST_PAUSE = 0.5
    MAX_PAUSE = 30.0

    def __init__(self, ctx: Context, app: faust.App, service: str, metrics: Metrics) -> None:
        self.ctx = ctx
        self.app = app
        self.service = service
        self.metrics = metrics
        self._tables: list[StateTable[Any]] = []
        self._progress: dict[str, Progress] = {}
        self._lock = asyncio.Lock()
        partitions = {spec.name: spec.partitions for spec in ctx.topics.specs()}
        producer = lambda: cast(Any, app.producer)._ensure_producer()  # noqa: E731
        stop = (app.sleep, lambda: app.should_stop)
        self.outputs = Outputs(producer, partitions, f"{service} outputs", *stop)
        self.changelogs = Outputs(producer, {}, f"{service} state", *stop)
        self.dead = DeadLetters(self._dead_letter, metrics, service)
        #: the raw input topics this service judges (it owns their type), with their accepted streams
        self.judged = {ctx.topics.topic(t): ctx.topics.accepted(t) for t, owner in OWNER.items() if owner == service}
        self.refused = 0  # records of accepted streams this service could not use (no dead letter)
        #: the batch in hand: per input partition, its outcomes and rejection reasons
        self._outcomes: dict[TP, Counter[Verdict]] = {}
        self._reasons: dict[TP, Counter[str]] = {}
        self._next: dict[TP, int] = {}
        #: the last committed progress document per topic and partition, for the metrics thread
        self.progress_seen: dict[str, dict[int, ProgressDoc]] = {}
        metrics.registry.register(ProgressCollector(self))
        app.on_rebalance_complete.connect(self._read_progress)

    # --- state ------------------------------------------------------------------------------

    @overload
    def table(self, name: str, partitions: int) -> StateTable[Any]: ...
    @overload
    def table(self, name: str, partitions: int, layout: type[S]) -> StateTable[S]: ...
    @overload
    def table(self, name: str, partitions: int, layout: Layout[D]) -> StateTable[D]: ...

    def table(self, name: str, partitions: int, layout: type[Any] | Layout[Any] | None = None) -> StateTable[Any]:
        """A state table whose changelog is partitioned like its keyed input topic (murmur2 of the
        key), so timers may write it outside a stream event; its counts and due index cover the
        partitions this worker holds as actives."""
        raw = self.app.Table(
            name,
            default=None,
            partitions=partitions,
            key_type=bytes,
            value_type=bytes,
            use_partitioner=True,
            options=store_options(self.ctx.settings),
            extra_topic_configs=CHANGELOG_CONFIG,
            on_changelog_event=self._recovered,
        )

        def held() -> set[int]:
            changelog = raw.changelog_topic.get_topic_name()
            return {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == changelog}

        if isinstance(layout, type):  # a Struct: its documents are stored as they are
            layout = Typed(layout)
        table = StateTable(raw, layout, clock=self.ctx.clock.now, held=held)
        self._tables.append(table)
        return table

    async def _recovered(self, event: Any) -> None:
        """One changelog record read into the store: recovering a partition this worker now owns
        (active), or keeping a copy of one another worker owns (standby)."""
        standby = cast(Any, self.app.tables).recovery.standby_tps
        replica = "standby" if event.message.tp in standby else "active"
        self.metrics.changelog_recovered.labels(service=self.service, replica=replica).inc()

    def progress(self, topic: str, partitions: int) -> Progress:
        if topic not in self._progress:
            kind = self.ctx.topics.event_type_of(topic)
            assert kind is not None, topic  # an input topic of the catalogue
            name = f"progress-{kind.name}"
            if self.ctx.topics.is_accepted(topic):  # its own offsets, never those of the raw topic
                name += ".accepted"
            self._progress[topic] = Progress(self.table(name, partitions))
        return self._progress[topic]

    async def _read_progress(self, *_: Any, **__: Any) -> None:
        """After a rebalance (tables recovered): the progress of every partition now held."""
        for table in self._tables:
            table.forget_decoded()
        for topic, progress in self._progress.items():
            self.progress_seen[topic] = dict(progress.documents())

    def meta(self, event_type: str, event_id: str, city: str, now: datetime, cause: str | None) -> Meta:
        """`meta` of a derived event: its id derived from what it says, so a replay emits the same id."""
        return Meta(
            event_id=event_id,
            event_type=event_type,
            source_city=city,
            source_system=f"tongcheng-{self.service}",
            occurred_at=now,
            published_at=now,
            causation_id=cause,
        )

    # --- per event --------------------------------------------------------------------------

    def _dead_letter(self, topic: str, key: bytes | None, value: bytes | None, headers: Headers) -> None:
        self.outputs.add(topic, key, value, partition=0, headers=headers)  # a DLQ has one partition

    def reject(self, record: Record, reason: Reason, detail: str) -> None:
        """Queue the record, byte for byte, for its topic's DLQ; it is sent with the batch's outputs.

        One verdict per event: on an accepted stream the owner has judged the record already, so
        a later refusal here is counted and logged, never a second dead letter.
        """
        self._reasons[TP(record.topic, record.partition)][reason.value] += 1
        if self.ctx.topics.is_accepted(record.topic):
            self.refused += 1
            where = f"{record.topic}[{record.partition}]@{record.offset}"
            log.info("%s: not applied %s: %s: %s", self.service, where, reason.value, detail)
            return
        self.dead.reject(record, reason, detail, count=False)  # counted once the batch is through

    def decode(self, record: Record, event_type: str) -> AvroRecord:
        """Decode and contract-check one input record; raises Rejected (bad data) or Unavailable.

        On a topic this service judges, the whole verdict is given here but for the domain rules:
        a null value (a tombstone deletes nothing), the schema, the contract checks, and the
        signature of the city that sent it.
        """
        if record.value is None:
            raise Rejected(Reason.NULL_VALUE, "a null value (tombstone) on an input topic; it deletes nothing")
        kind = self.ctx.topics.event_type_of(record.topic)
        schema = kind.schema if kind else None
        decoded = self.ctx.codec.decode(record.value, schema)
        if not self.ctx.topics.is_accepted(record.topic):  # an accepted record was checked by its owner
            self.ctx.validator.check(event_type, decoded)
        if record.topic in self.judged:
            self.verify(record, decoded)
        return decoded

    def verify(self, record: Record, decoded: AvroRecord) -> None:
        """A judged record counts only under the city that signed it (topics/provenance.py): raises
        Rejected (unsigned, bad_signature, source_mismatch). Verified here once per event, by its
        owner; readers of the accepted stream rely on that.

        The one exception is a record a service derived itself (`emit` of an input type), signed
        with its own roster key and naming it as `meta.source_system`: it counts under the city of
        the event it was derived from, which was verified when that event was judged.
        """
        if self.ctx.provenance_required:
            meta = decoded["meta"]
            self.ctx.verifier.check(
                record.topic, record.value, record.headers, meta["source_city"], meta["source_system"]
            )

    def accept(self, record: Record, decoded: AvroRecord) -> None:
        """Forward an applied record of a judged topic to its accepted stream, byte for byte, on the
        same partition, with its headers (so its signature can still be checked) and where it came from.

        Its CloudEvents attributes are the ones its meta gives (the SDK wrote the same): a record a
        client sent without them, or with others, is forwarded with these."""
        kind = self.ctx.topics.event_type_of(record.topic)
        assert kind is not None
        ce = cloudevents.event_headers(self.ctx.topics.prefix, kind.name, decoded)
        headers = [
            *cloudevents.replace_core(record.headers or (), ce),
            ("accepted.by", self.service.encode()),
            ("source.partition", str(record.partition).encode()),
            ("source.offset", str(record.offset).encode()),
        ]
        self.outputs.add(self.judged[record.topic], record.key, record.value, record.partition, headers)

    async def each(self, records: Sequence[Record], event_type: str, handle: Handle[E]) -> None:
        """Run `handle` on every decodable record of a batch, as the Struct of `event_type`
        (schemas/events.py); handle returns the outcome to count."""
        started = time.perf_counter()
        kind = BY_SCHEMA[EVENT_TYPES[event_type].schema]
        for record in records:
            try:
                decoded = self.decode(record, event_type)
                event = cast(E, typed(decoded, kind))  # the handler's type is its event type's Struct
                outcome = await handle(record, event)
            except Rejected as exc:
                self.reject(record, exc.reason, exc.detail)
                continue
            except Unavailable:
                raise
            except Exception as exc:  # a bug must not stop the worker: dead-letter and go on
                log.exception("internal error on %s[%d]@%d", record.topic, record.partition, record.offset)
                self.reject(record, Reason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
                continue
            if outcome == "applied" and record.topic in self.judged:
                self.accept(record, decoded)
            self._outcomes[TP(record.topic, record.partition)][outcome] += 1
        if records:
            self.metrics.processing_seconds.observe((time.perf_counter() - started) / len(records))

    async def emit(self, event_type: str, key: str, event: Event) -> None:
        """Queue one output event; `flush` sends a batch's outputs as one record batch per partition.

        An input event this service derives (credit records of a closed enforcement action) is signed
        with the service's own roster key, so that it passes the owner's provenance check."""
        body = plain(event)
        topic = self.ctx.topics.topic(event_type)
        value = self.ctx.codec.encode(f"{topic}-value", EVENT_TYPES[event_type].schema, body)
        headers = cloudevents.event_headers(self.ctx.topics.prefix, event_type, body, self.service)
        if event_type in OWNER:
            headers += self.signer().headers(topic, value)
        self.outputs.add(topic, key.encode(), value, headers=headers)

    def signer(self) -> Signer:
        """This service's signer, from the roster files as they are now (a key made or rotated since
        the start is used; a retired one is not). Derived inputs are rare: a closed action's records."""
        s = self.ctx.settings
        return Signer.for_city(
            s, load_circle(s.circle_file, s.circle, s.roster_keys_path), service_signer(self.service)
        )

    # --- delivery ---------------------------------------------------------------------------

    async def flush(self) -> None:
        """Send the batch's outputs, then its state, then its progress, each retried until
        acknowledged (see the class notes for why in this order); the offsets are committed after.

        The progress goes last, on its own: the state's changelog records go to several topics
        and partitions, each acknowledged on its own, and progress acknowledged for a partition
        whose state was not would skip that state's records after a crash.
        """
        advanced = {
            tp: self._progress[tp.topic].advance(tp.partition, next_offset, self._counts(tp), dict(self._reasons[tp]))
            for tp, next_offset in self._next.items()
        }
        await self.outputs.send()
        progress_tables = {id(p.table) for p in self._progress.values()}
        for last in (False, True):
            tables = [table for table in self._tables if (id(table) in progress_tables) == last]
            for table in tables:
                for topic, partition, key, raw in table.commit():
                    self.changelogs.add(topic, key, raw, partition)
            await self.changelogs.send()
            for table in tables:  # into the store once the changelog holds them, with its offsets
                table.store(self.changelogs.acked)
        for tp, doc in advanced.items():
            self.progress_seen.setdefault(tp.topic, {})[tp.partition] = doc

    def _counts(self, tp: TP) -> dict[Outcome, int]:
        """The batch's outcomes on one input partition, rejections included."""
        counts: dict[Outcome, int] = {outcome: n for outcome, n in self._outcomes[tp].items()}
        counts["rejected"] = sum(self._reasons[tp].values())
        return counts

    def _count_batch(self) -> None:
        """The process counters, once a batch's effects are acknowledged (a retried batch counts once)."""
        for tp in self._next:
            for outcome, n in self._counts(tp).items():
                if n:
                    self.metrics.events_consumed.labels(service=self.service, topic=tp.topic, outcome=outcome).inc(n)
            for reason, n in self._reasons[tp].items():
                self.metrics.events_rejected.labels(topic=tp.topic, reason=reason).inc(n)

    def _drop(self) -> None:
        self.outputs.clear()
        for table in self._tables:
            table.discard()

    def exclusive(self, work: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        """`work` (a timer) run alone among this processor's batches and timers.

        If it fails or is cancelled (a shutdown) before its effects are sent, its queued outputs
        and table writes are dropped: the state stays as the last acknowledged batch left it.
        """

        @functools.wraps(work)
        async def run(*args: Any) -> None:
            async with self._lock:
                try:
                    await work(*args)
                except BaseException:
                    self._drop()
                    raise

        return run

    async def on_fetched(self, on_batch: OnBatch, fetched: Mapping[TP, Sequence[Record]]) -> None:
        """One fetch of one input topic: skip what the state already holds, apply the rest
        (`on_batch`), send its effects in order (`flush`), count, commit."""
        topic = next(iter(fetched)).topic
        progress = self._progress[topic]
        todo: list[Record] = []
        commit: dict[TP, int] = {}
        for tp, records in fetched.items():
            start = progress.next_offset(tp.partition)
            todo.extend(r for r in records if r.offset >= start)
            commit[tp] = max(records[-1].offset + 1, start)
        pause = self.FIRST_PAUSE
        async with self._lock:
            while todo:
                self._next = {tp: offset for tp, offset in commit.items()}
                self._outcomes = {tp: Counter() for tp in commit}
                self._reasons = {tp: Counter() for tp in commit}
                try:
                    await on_batch(todo)
                    await self.flush()
                    self._count_batch()
                    break
                except Unavailable as exc:
                    self._drop()
                    log.warning("%s: %s; the batch waits and is tried again in %.1fs", self.service, exc, pause)
                except Abandoned as exc:
                    self._drop()
                    log.warning("%s", exc)
                    return
                except BaseException:
                    self._drop()
                    raise
                finally:
                    self._next, self._outcomes, self._reasons = {}, {}, {}
                await self.app.sleep(pause)
                pause = min(pause * 2, self.MAX_PAUSE)
                if self.app.should_stop:
                    log.warning("%s: stopping; the waiting batch will be delivered again", self.service)
                    return
            cast(Consumer, self.app.consumer).commit_soon(commit)
