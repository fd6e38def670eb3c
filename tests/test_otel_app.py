"""OpenTelemetry export through the application's own global SDK providers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from test_otel import run_python

pytestmark = [pytest.mark.otel, pytest.mark.processes]

_APP = """
import json, logging, threading
from opentelemetry import _logs, metrics, trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

resource = Resource.create({"service.name": "the-app"})
logs, spans, reader = InMemoryLogRecordExporter(), InMemorySpanExporter(), InMemoryMetricReader()
provider = LoggerProvider(resource=resource)
provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
_logs.set_logger_provider(provider)
tracing = TracerProvider(resource=resource)
tracing.add_span_processor(SimpleSpanProcessor(spans))
trace.set_tracer_provider(tracing)
metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))

import logbridge
from logbridge import otel

otel.enable()
run = logbridge.start_run(experiment="app", name="main")
log = logging.getLogger("train")
log.setLevel(logging.INFO)
log.addHandler(logbridge.RunHandler())
log.info("hello", extra={"metrics": {"loss": 0.5, "bad name!": 1.0}, "step": 1})
noise = ("exporter noise",)
sdk_thread = threading.Thread(target=log.info, args=noise, name="OtelBatchLogRecordProcessor")
sdk_thread.start()
sdk_thread.join()
child = run.child_run("trial")
child.log("acc", 0.875)
child.complete()
run.complete()
flushed = otel.flush(5)
out = {"run": run.id, "child": child.id, "flushed": flushed, "logs": [], "spans": [], "gauges": {}}
for item in logs.get_finished_logs():
    record = item.log_record
    out["logs"].append({
        "body": record.body, "trace": record.trace_id, "span": record.span_id,
        "attributes": dict(record.attributes), "scope": item.instrumentation_scope.name,
        "service": item.resource.attributes.get("service.name"),
    })
for span in spans.get_finished_spans():
    out["spans"].append({
        "name": span.name, "trace": span.context.trace_id, "span": span.context.span_id,
        "parent": span.parent.span_id if span.parent else None,
        "attributes": dict(span.attributes),
    })
for rm in reader.get_metrics_data().resource_metrics:
    for sm in rm.scope_metrics:
        for metric in sm.metrics:
            out["gauges"][metric.name] = [
                (p.value, dict(p.attributes)) for p in metric.data.data_points
            ]
print(json.dumps(out))
"""


def test_the_applications_providers_are_used(tmp_path: Path) -> None:
    """Records, gauges and run spans go into the app's providers; ids tie records to spans."""
    script = tmp_path / "app.py"
    script.write_text(_APP)
    env = {**os.environ, "LOGBRIDGE_HOME": str(tmp_path / "store")}
    env.pop("LOGBRIDGE_RUN_ID", None)
    env.pop("LOGBRIDGE_OTEL", None)
    done = run_python(script, env)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["flushed"] is True
    spans = {span["name"]: span for span in out["spans"]}
    main, trial = spans["main"], spans["trial"]
    assert main["parent"] is None
    assert trial["parent"] == main["span"]  # a child run is a child span, in the same trace
    assert trial["trace"] == main["trace"]
    assert main["attributes"]["logbridge.run.id"] == out["run"]
    assert main["attributes"]["logbridge.run.status"] == "Completed"
    bodies = {record["body"]: record for record in out["logs"]}
    hello = bodies["hello"]
    assert (hello["trace"], hello["span"]) == (main["trace"], main["span"])
    assert hello["scope"] == "train"
    assert hello["service"] == "the-app"  # the application's resource
    assert hello["attributes"]["logbridge.run.id"] == out["run"]  # the run, as attributes
    assert bodies["acc=0.875"]["span"] == trial["span"]
    assert "exporter noise" not in bodies  # logged on an SDK thread: not sent back into it
    assert out["gauges"]["loss"] == [
        [0.5, {"logbridge.run.id": out["run"], "logbridge.experiment": "app"}]
    ]
    assert "bad name!" not in out["gauges"]
    # The point OpenTelemetry cannot take is counted (its metric event was delivered).
    assert done.stderr.count("could not be sent") == 1
    assert "1 metric points" in done.stderr
    assert "the application's OpenTelemetry providers" in done.stderr
    assert "Traceback" not in done.stderr
