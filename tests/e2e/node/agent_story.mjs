// Export one agent run through the Node OpenTelemetry SDK and its OTLP/HTTP JSON exporter.
// Reads PATHWATCH_OTLP_ENDPOINT (base URL) and PATHWATCH_OTLP_COMPRESSION ("gzip" or
// "none"); prints {"traceId", "spanIds", "exportResults"} as JSON once the SDK is shut down.
import { context, SpanKind, trace } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";

const endpoint = process.env.PATHWATCH_OTLP_ENDPOINT;
if (!endpoint) {
  console.error("PATHWATCH_OTLP_ENDPOINT is not set");
  process.exit(2);
}
const MODEL = "gpt-4o-mini";
const TOOL_CALLS = [
  ["get_weather", "call_1", { city: "Paris" }, { city: "Paris", sky: "cloudy" }],
  ["search_docs", "call_2", { query: "umbrella policy" }, { docs: [], hits: 0 }],
  ["search_docs", "call_3", { query: "umbrella policy" }, { docs: [], hits: 0 }],
  ["search_docs", "call_4", { query: "umbrella policy" }, { docs: [], hits: 0 }],
];

const exportResults = [];
const exporter = new OTLPTraceExporter({
  url: `${endpoint}/v1/traces`,
  compression: process.env.PATHWATCH_OTLP_COMPRESSION || "none",
  timeoutMillis: 10000,
});
const exportOnce = exporter.export.bind(exporter);
exporter.export = (spans, done) =>
  exportOnce(spans, (result) => {
    exportResults.push(result.code);
    done(result);
  });
const ended = new InMemorySpanExporter();
const provider = new BasicTracerProvider({
  resource: resourceFromAttributes({ "service.name": "pw-node-e2e" }),
  spanProcessors: [
    new SimpleSpanProcessor(ended),
    new BatchSpanProcessor(exporter, { scheduledDelayMillis: 100 }),
  ],
});
const tracer = provider.getTracer("pathwatch.tests.agent_story", "1.0.0");

// Each step takes a few milliseconds, as real ones do: the Node SDK rounds start times to
// the millisecond, and steps started in the same millisecond have no defined order.
const STEP_MILLIS = 5;
const pause = () => new Promise((resolve) => setTimeout(resolve, STEP_MILLIS));

async function child(parent, name, attributes, kind = SpanKind.INTERNAL) {
  const span = tracer.startSpan(name, { kind, attributes }, trace.setSpan(context.active(), parent));
  await pause();
  span.end();
  await pause();
}

async function chatTurn(parent, inputTokens, outputTokens) {
  const attributes = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": MODEL,
    "gen_ai.response.model": MODEL,
    "gen_ai.usage.input_tokens": inputTokens,
    "gen_ai.usage.output_tokens": outputTokens,
  };
  await child(parent, `chat ${MODEL}`, attributes, SpanKind.CLIENT);
}

const root = tracer.startSpan("invoke_agent trip-helper", {
  attributes: {
    "gen_ai.operation.name": "invoke_agent",
    "gen_ai.agent.name": "trip-helper",
    "gen_ai.provider.name": "openai",
  },
});
await chatTurn(root, 52, 61);
for (const [toolName, callId, args, result] of TOOL_CALLS) {
  await child(root, `execute_tool ${toolName}`, {
    "gen_ai.operation.name": "execute_tool",
    "gen_ai.tool.name": toolName,
    "gen_ai.tool.call.id": callId,
    "gen_ai.tool.call.arguments": JSON.stringify(args),
    "gen_ai.tool.call.result": JSON.stringify(result),
  });
}
await chatTurn(root, 148, 23);
root.end();

await provider.forceFlush();
const finished = ended.getFinishedSpans(); // shutdown empties the in-memory exporter
await provider.shutdown();
console.log(
  JSON.stringify({
    traceId: root.spanContext().traceId,
    spanIds: finished.map((span) => span.spanContext().spanId),
    exportResults,
  }),
);
