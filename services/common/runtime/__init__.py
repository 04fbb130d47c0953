"""The stream runtime: everything Tongcheng asks of faust-streaming and aiokafka, in one package.

- `transport`: the batch path, a faust transport whose consumer hands whole fetches to processors;
- `service`: the processor, which owns the delivery order (outputs, state, offsets);
- `stream`: the frame of a service: its app, its processor, batch handlers and timers;
- `progress`: the counts kept in the state, served as metrics;
- `outcomes`: what a handler takes (the record, its event's Struct) and returns, the outcomes
  counted, the progress document;
- `tables`: state tables over faust tables (counts, due index), per-partition progress;
- `encoding`, `indexes`: how a table's documents, counts and due entries are stored;
- `delivery`: output records sent as one record batch per partition, retried until taken;
- `app`: the faust app's settings and the worker process.

Processors import from here only; the assumptions about the pinned faust and aiokafka internals
are checked by tests/unit/test_runtime_assumptions.py.
"""

from services.common.runtime.app import make_app, quiet_clients, run_worker, serve_metrics
from services.common.runtime.delivery import Abandoned, Outputs, partition_of, track_topic
from services.common.runtime.encoding import Layout
from services.common.runtime.outcomes import Record, Verdict
from services.common.runtime.service import Processor
from services.common.runtime.stream import StreamService
from services.common.runtime.tables import Progress, StateTable

__all__ = [
    "Abandoned",
    "Layout",
    "Outputs",
    "Processor",
    "Progress",
    "StateTable",
    "Record",
    "StreamService",
    "Verdict",
    "make_app",
    "partition_of",
    "quiet_clients",
    "run_worker",
    "serve_metrics",
    "track_topic",
]
