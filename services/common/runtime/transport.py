"""The batch path: faust's aiokafka consumer, with whole fetches handed to the processors.

faust-streaming 0.15.3 delivers every fetched record one at a time: `Consumer._drain_messages`
awaits the conductor's callback per message (4 tasks, a `sleep(0)` per 100 events, a lock per
message), the stream buffers it, and `take_events` rebuilds a batch. That path caps a worker at
about 8,000 events/s on this machine class, a tenth of what decoding allows.

faust lets an application bring its own transport: drivers are looked up by the broker URL's
scheme in `faust.transport.drivers.TRANSPORTS` (which also reads the `faust.transports` entry
points). Tongcheng names `tongcheng://` there (runtime/app.py) for this module's `Transport`,
whose `Consumer` replaces one method, `_drain_messages`: each fetch (a mapping partition ->
records) goes to the processor of its topic as one batch. Everything else stays faust's: group
membership, the assignor, table recovery (changelog records still take faust's per-message path
to the recovery service), standbys and flow control around rebalances.

Offsets of batch topics are committed by the processor once a batch's outputs and state are
acknowledged (`commit_processed`); faust's own commit loop never sees them, because the batch
path does not use faust's acked-offset bookkeeping (whose off-by-one and gap handling are the
subject of faust-streaming #48, #312 and #606).

Records fetched and not delivered are put back (`_put_back`): a fetch that returns while the flow
is stopped for a rebalance, records of a paused partition, a delivery cut short. Taking records
from aiokafka moves the partition's position past them; faust's answer to a dropped fetch
(`perform_seek`, in `Consumer.getmany` as here) moves back only partitions with committed offsets.
A changelog partition has none: when the recovery of the new generation had already sought it
and its records came back in a fetch that was then dropped, nothing read them again, and the
recovery waited for them for ever (seen as "No event received for active tp ... since recovery
start"; the recovery stall of faust-streaming #21 and #74). A worker whose partner was SIGKILLed
then never took the partner's partitions over.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, cast

from aiokafka.errors import CommitFailedError, ConsumerStoppedError, IllegalStateError, KafkaError
from aiokafka.structs import OffsetAndMetadata
from faust.transport.drivers import aiokafka as driver
from faust.types import TP

log = logging.getLogger("tongcheng.runtime")

#: records of one topic from one fetch, by partition
Fetched = Mapping[TP, Sequence[Any]]
BatchHandler = Callable[[Fetched], Awaitable[None]]


#: how long the broker may hold a fetch that finds no new data; faust's driver fixes 1,500 ms
FETCH_MAX_WAIT_MS = 100


class ConsumerThread(driver.AIOKafkaConsumerThread):
    """faust's consumer thread; its aiokafka consumer waits at most `FETCH_MAX_WAIT_MS` per fetch.

    faust 0.15.3 passes `fetch_max_wait_ms=1500` to aiokafka and has no setting for it. Under a
    steady stream (2,000 records/s) the worker then sat idle for 1.2-1.6 s between batches, and
    publish-to-profile latency was 1.3-1.7 s at the median.
    """

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when the consumer starts its fetcher
        return consumer


class Consumer(driver.Consumer):
    """faust's aiokafka consumer, with a batch path for the topics that have a batch handler."""

    _in_flight: asyncio.Future[Any] | None = None
    _committing: asyncio.Future[Any] | None = None
    _to_commit: dict[TP, int] | None = None

    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    @property
    def _batch_handlers(self) -> dict[str, BatchHandler]:
        return batch_handlers(self.app)

    async def _drain_messages(self, fetcher: Any) -> None:
        """Fetch, then hand each batch topic's records to its handler and other records to faust.

        A batch in hand when the worker stops is finished (its outputs, state and offsets), so a
        clean stop leaves nothing to process again; the fetcher's cancel waits for it.
        """
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                records, active = await self._wait_next_records(1.0)
                if not records or self.should_stop:
                    continue
                if not self.flow_active:
                    # a rebalance began while these were fetched: as faust does, go back to the
                    # committed offsets, and put back what was fetched of partitions without one
                    # (the changelogs a recovery reads). (Not a generation check around the fetch:
                    # the fetch waits for the flow to resume, so it would drop the first records
                    # of a recovery.)
                    await self.perform_seek()
                    await self._put_back(records)
                    continue
                batches: dict[str, dict[TP, Sequence[Any]]] = {}
                undelivered: dict[TP, Sequence[Any]] = {}  # of paused partitions, or after the flow stopped
                fetched_items = list(records.items())
                for i, (tp, tp_records) in enumerate(fetched_items):
                    if active is not None and tp not in active:
                        undelivered[tp] = tp_records
                    elif tp.topic in self._batch_handlers:
                        batches.setdefault(tp.topic, {})[tp] = tp_records
                    elif not await self._deliver_each(tp, tp_records):
                        undelivered.update(fetched_items[i + 1 :])
                        undelivered.update((btp, r) for held in batches.values() for btp, r in held.items())
                        batches = {}
                        break
                await self._put_back(undelivered)
                topics = list(batches.items())
                for k, (topic, fetched) in enumerate(topics):
                    if not self.flow_active:
                        # a revocation began: these are read again from where they start
                        await self._put_back({tp: r for _, held in topics[k:] for tp, r in held.items()})
                        break
                    work = asyncio.ensure_future(self._batch_handlers[topic](fetched))
                    self._in_flight = work
                    try:
                        await asyncio.shield(work)
                    except asyncio.CancelledError:
                        if not work.done():
                            log.info("stopping: finishing the batch in hand first")
                            await asyncio.wait({work})
                        raise
                    finally:
                        self._in_flight = None
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise

    async def _deliver_each(self, tp: TP, records: Sequence[Any]) -> bool:
        """faust's own path, one message at a time: changelogs (recovery, standbys), other topics.

        When the flow stops (a rebalance) the rest, from the record whose delivery it cut short,
        is put back, and False returned."""
        get_read_offset = self._read_offset.__getitem__
        for i, record in enumerate(records):
            r_offset = get_read_offset(tp)
            if r_offset is None or record.offset >= r_offset:
                if self.flow_active:
                    await self.wait_first(self.callback(self._to_message(tp, record)), self.suspend_flow.wait())
                if not self.flow_active:
                    await self._put_back({tp: records[i:]})
                    return False
                self._read_offset[tp] = record.offset
        return True

    async def _put_back(self, dropped: Mapping[TP, Sequence[Any]]) -> None:
        """Move each partition whose fetched records were not delivered back to the first of them.

        Only ever backwards: a partition already at or before that record (sought since, by a
        recovery or to its commit) stays. Reading a record twice is safe on every path (the
        recovery skips changelog offsets it has, the processors offsets their state has)."""
        firsts = {tp: records[0].offset for tp, records in dropped.items() if records}
        if not firsts:
            return
        try:
            moved = await self._rewind(firsts)
        except (KafkaError, ConsumerStoppedError) as exc:
            log.info("fetched records not put back (%s: %s); the next recovery seeks again", type(exc).__name__, exc)
            return
        for tp in moved:
            self._read_offset[tp] = firsts[tp] or None
        if moved:
            log.info("put back the undelivered records of %d partition(s) for the next fetch", len(moved))

    async def _rewind(self, firsts: Mapping[TP, int]) -> list[TP]:
        """Seek the assigned partitions of `firsts` that are past their offset back to it, in the
        consumer's thread (where recoveries seek too, so no seek comes in between); the moved ones."""
        thread = cast(Any, self._thread)
        aiokafka_consumer = thread._ensure_consumer()

        async def rewind() -> list[TP]:
            moved = []
            assigned = aiokafka_consumer.assignment()
            for tp, first in firsts.items():
                atp = driver.ensure_aiokafka_TP(tp)
                if atp not in assigned:
                    continue
                try:
                    position = await asyncio.wait_for(aiokafka_consumer.position(atp), 1.0)
                except (TimeoutError, IllegalStateError):
                    continue  # being reset or no longer ours: whoever sets it next decides
                if position > first:
                    aiokafka_consumer.seek(atp, first)
                    moved.append(tp)
            return moved

        return cast(list[TP], await thread.call_thread(rewind))

    async def wait_empty(self) -> None:
        """Before a revocation or a stop: also wait for the batch in hand and its commit (faust #502:
        offsets not committed before partitions are revoked)."""
        for work in (self._in_flight, self._committing):
            if work is not None and not work.done():
                await asyncio.wait({work}, timeout=self.app.conf.broker_session_timeout)
        await super().wait_empty()

    def commit_soon(self, offsets: Mapping[TP, int]) -> None:
        """Commit these offsets in the background, while the next batch is fetched and processed.

        One commit is in flight at a time; offsets that arrive meanwhile go in the next one. The
        processor's state already holds the position (`Progress`), so a commit that lands late, or
        never (a crash), only means records delivered again and skipped.
        """
        if self._to_commit is None:
            self._to_commit = {}
        self._to_commit.update(offsets)
        if self._committing is None or self._committing.done():
            self._committing = asyncio.ensure_future(self._commit_pending())

    async def _commit_pending(self) -> None:
        while self._to_commit:
            offsets, self._to_commit = self._to_commit, {}
            await self.commit_processed(offsets)

    async def commit_processed(self, offsets: Mapping[TP, int]) -> bool:
        """Commit the next offsets to read for batch partitions this member still owns.

        A failed commit is not fatal: the processed position is also kept in the processor's
        state (see `Progress`), so records below it are skipped if they are delivered again.
        faust's own `_commit` crashes the consumer on any error, which would turn a broker
        restart into a dead worker.
        """
        assignment = self.assignment()
        mine = {tp: offset for tp, offset in offsets.items() if tp in assignment}
        if not mine:
            return False
        thread = cast(Any, self._thread)
        aiokafka_consumer = thread._ensure_consumer()
        commit = {driver.ensure_aiokafka_TP(tp): OffsetAndMetadata(offset, "") for tp, offset in mine.items()}
        try:
            await thread.call_thread(aiokafka_consumer.commit, commit)
        except (CommitFailedError, IllegalStateError) as exc:
            log.info("offsets not committed (%s); the processor's state keeps the position", exc)
            return False
        except KafkaError as exc:
            log.warning("offsets not committed (%s: %s); the next batch commits again", type(exc).__name__, exc)
            return False
        self._committed_offset.update(mine)
        return True


#: the attribute of a faust app that holds its batch handlers by topic
HANDLERS = "tongcheng_batch_handlers"


def install_batch_handlers(app: object) -> dict[str, BatchHandler]:
    """Give `app` an empty table of batch handlers by topic, which `StreamService.agent` fills."""
    handlers: dict[str, BatchHandler] = {}
    setattr(app, HANDLERS, handlers)
    return handlers


def batch_handlers(app: object) -> dict[str, BatchHandler]:
    """The app's batch handlers by topic, set by `StreamService.agent` (none: faust's path only)."""
    return cast(dict[str, BatchHandler], getattr(app, HANDLERS, {}))


class Transport(driver.Transport):
    """The aiokafka transport with Tongcheng's batch consumer (`tongcheng://host:port`)."""

    Consumer = Consumer
