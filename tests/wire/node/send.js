// Drive the real Node.js SDKs against a portal; print one JSON report on stdout (tests/wire/test_sdks_node.py).
// Usage: node send.js <portal url> <service key> <correlation id>
'use strict';
const [portal, key, cid] = process.argv.slice(2);
const report = { posthog: { errors: [] }, segment: { errors: [], statuses: [] }, otlp: { results: [] } };

async function posthog() {
  const { PostHog } = require('posthog-node');
  const ph = new PostHog(key, { host: `${portal}/posthog`, flushAt: 100, flushInterval: 60000, fetchRetryCount: 0 });
  ph.on('error', (error) => report.posthog.errors.push(String(error)));
  report.posthog.uuids = [
    ph.capture({ distinctId: 'user-42', event: 'basket_filled', properties: { items: 3, correlation_id: cid, name: 'Zoë ✓ 日本 😀' } }),
    ph.identify({ distinctId: 'user-42', properties: { plan: 'pro' } }),
    ph.captureAi({ distinctId: 'user-42', event: '$ai_generation', properties: { $ai_model: 'gpt-4o-mini', correlation_id: cid } }),
  ];
  // The portal has no feature flags: /flags/ says so (it was a 404, an error per call).
  report.posthog.flag = String(await ph.getFeatureFlag('new-checkout', 'user-42'));
  report.posthog.enabled = String(await ph.isFeatureEnabled('new-checkout', 'user-42'));
  await ph.shutdown(10000);
}

async function segment() {
  const { Analytics } = require('@segment/analytics-node');
  const analytics = new Analytics({ writeKey: key, host: `${portal}/segment`, flushInterval: 60000, maxRetries: 0 });
  analytics.on('error', (error) => report.segment.errors.push(`${error.code}: ${error.reason}`));
  analytics.on('http_response', (response) => report.segment.statuses.push([response.status, new URL(response.url).pathname]));
  analytics.track({ userId: 'user-7', event: 'Invoice Paid', properties: { amount: 12, correlation_id: cid } });
  analytics.identify({ userId: 'user-7', traits: { plan: 'pro' }, context: { correlationId: cid } });
  await analytics.closeAndFlush({ timeout: 10000 });
}

async function otlp() {
  const { TracerProvider, BatchSpanProcessor } = require('@opentelemetry/sdk-trace');
  const { LoggerProvider, BatchLogRecordProcessor } = require('@opentelemetry/sdk-logs');
  const { resourceFromAttributes } = require('@opentelemetry/resources');
  const { trace, context, SpanStatusCode } = require('@opentelemetry/api');
  const headers = { Authorization: `Bearer ${key}` };
  const recorded = (exporter, name) => {
    const send = exporter.export.bind(exporter);
    exporter.export = (items, done) => send(items, (result) => {
      report.otlp.results.push([name, items.length, result.code, result.error ? String(result.error) : null]);
      done(result);
    });
    return exporter;
  };
  const resource = resourceFromAttributes({ 'service.name': 'tiles-api', 'deployment.environment.name': 'prod' });
  for (const encoding of ['proto', 'json']) {
    const suffix = encoding === 'proto' ? 'proto' : 'http';
    const { OTLPTraceExporter } = require(`@opentelemetry/exporter-trace-otlp-${suffix}`);
    const { OTLPLogExporter } = require(`@opentelemetry/exporter-logs-otlp-${suffix}`);
    const compression = encoding === 'proto' ? 'gzip' : 'none';
    const spans = recorded(new OTLPTraceExporter({ url: `${portal}/otlp/v1/traces`, headers, compression }), `traces-${encoding}`);
    const logs = recorded(new OTLPLogExporter({ url: `${portal}/otlp/v1/logs`, headers, compression }), `logs-${encoding}`);
    const tracerProvider = new TracerProvider({ resource, spanProcessors: [new BatchSpanProcessor({ exporter: spans })] });
    const loggerProvider = new LoggerProvider({ resource, processors: [new BatchLogRecordProcessor({ exporter: logs })] });
    const tracer = tracerProvider.getTracer('tiles.handlers', '2.3.0');
    const logger = loggerProvider.getLogger('tiles.handlers', '2.3.0');
    const root = tracer.startSpan(`GET /tiles ${encoding}`, { attributes: { 'enduser.id': 'user-9' } });
    const inRoot = trace.setSpan(context.active(), root);
    report.otlp[encoding] = root.spanContext().traceId;
    // Half an emoji, and integral Numbers past int64: JSON.stringify writes them as they are.
    logger.emit({ body: `cut ${'😀'.slice(0, 1)}`, severityNumber: 13, attributes: { huge: 1e21, max: Number.MAX_VALUE }, context: inRoot });
    const child = tracer.startSpan('render', {}, inRoot);
    child.setStatus({ code: SpanStatusCode.ERROR, message: 'renderer crashed' });
    child.end();
    root.end();
    await tracerProvider.shutdown();
    await loggerProvider.shutdown();
  }
}

(async () => {
  await posthog();
  await segment();
  await otlp();
  process.stdout.write(JSON.stringify(report) + '\n');
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
