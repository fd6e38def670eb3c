"""Send a training run to an OpenTelemetry collector, and keep it locally all the same.

Start a collector first, for example rotel (``pip install rotel``):

    rotel-agent start --otlp-http-endpoint 127.0.0.1:4318 --exporter blackhole \
        --debug-log logs --debug-log metrics --debug-log traces

then run ``OTEL_SERVICE_NAME=demo python examples/otel_collector.py``. Without a collector the
script still runs; at exit it reports what could not be sent, and
``logbridge export RUN`` sends the stored run later.
"""

import logging
import math
import os

import logbridge

os.environ.setdefault("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")

run = logbridge.basicConfig(experiment="otel-demo", otel=True)
log = logging.getLogger("train")

for epoch in range(5):
    loss = math.exp(-epoch)
    log.info("epoch %d done", epoch, extra={"metrics": {"loss": loss}, "step": epoch})

with run.child_run("evaluation") as evaluation:
    evaluation.log("accuracy", 0.93)

log.info("finished run %s", run.id)
