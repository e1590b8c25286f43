import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, trace } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import type { RequestOutcome } from './http1-proxy.js';

/**
 * One span per request, exported over OTLP/HTTP by OpenTelemetry's SDK when
 * --otlp-endpoint is set. The span's ids are the ones the waypoint already
 * put in the upstream `traceparent` (trace-context.ts), so the backend's
 * spans hang under this one: the SDK's id generator hands out exactly those.
 */
export function startSpanExporter(endpoint: string, serviceName: string) {
  let next: { traceId: string; spanId: string } | undefined;
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': serviceName }),
    idGenerator: {
      generateTraceId: () => next!.traceId,
      generateSpanId: () => next!.spanId,
    },
    spanProcessors: [new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: endpoint }) })],
  });
  const tracer = provider.getTracer('warren-waypoint');
  return {
    record(o: RequestOutcome): void {
      const t = o.trace;
      next = { traceId: t.traceId, spanId: t.spanId };
      const parent = t.parentSpanId === undefined ? ROOT_CONTEXT : trace.setSpanContext(ROOT_CONTEXT, { traceId: t.traceId, spanId: t.parentSpanId, traceFlags: t.sampled ? TraceFlags.SAMPLED : TraceFlags.NONE, isRemote: true });
      const end = Date.now();
      const span = tracer.startSpan(
        `${o.method} ${o.path}`,
        {
          kind: SpanKind.SERVER,
          startTime: end - o.durationMs,
          attributes: {
            'http.request.method': o.method,
            'url.path': o.path,
            'server.address': o.authority,
            'http.response.status_code': o.status,
            'guid:x-request-id': t.requestId,
            'warren.response_flags': o.flags,
            ...(o.plan.route ? { 'warren.route': o.plan.route } : {}),
            ...(o.upstream ? { 'network.peer.address': o.upstream.ip, 'network.peer.port': o.upstream.port } : {}),
          },
        },
        parent,
      );
      next = undefined;
      if (o.status >= 500 || o.status === 0) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end(end);
    },
    shutdown: () => provider.shutdown(),
  };
}
