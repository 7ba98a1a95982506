import { z } from 'zod';

/** `GET /healthz`: `stopping` once shutdown began (a load balancer should stop sending work). */
export const Health = z.strictObject({ status: z.enum(['ok', 'stopping']) });
export type Health = z.infer<typeof Health>;

/** `GET /v1/openapi.json`: any JSON object; its own validity is checked by the tests, not at run time. */
export const OpenApiDocument = z.record(z.string(), z.unknown());
export type OpenApiDocument = z.infer<typeof OpenApiDocument>;

/** `GET /metrics`: the Prometheus text exposition format. */
export const MetricsText = z.string();
