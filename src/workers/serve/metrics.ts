import { Counter, Histogram, type Registry } from 'prom-client';

/**
 * Label for requests that name no served endpoint, so that arbitrary paths cannot grow the
 * label set. Kubernetes names have no '_', so no endpoint is ever called this.
 */
export const UNKNOWN_ENDPOINT = '_unknown';
/** Label for the OpenAPI documents of all endpoints. */
export const ALL_ENDPOINTS = '_all';

/** Endpoint server metrics, registered on the worker's registry (one EndpointMetrics per registry). */
export class EndpointMetrics {
  readonly requests: Counter<'endpoint' | 'status'>;
  readonly duration: Histogram<'endpoint'>;

  constructor(registry: Registry) {
    this.requests = new Counter({
      name: 'weir_endpoint_requests_total',
      help: 'Endpoint requests by endpoint and HTTP status (499: the client went away first).',
      labelNames: ['endpoint', 'status'] as const,
      registers: [registry],
    });
    this.duration = new Histogram({
      name: 'weir_endpoint_request_duration_seconds',
      help: 'Endpoint request duration, until the response is written, by endpoint.',
      labelNames: ['endpoint'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    });
  }

  observe(endpoint: string, status: number, seconds: number): void {
    this.requests.inc({ endpoint, status: String(status) });
    this.duration.observe({ endpoint }, seconds);
  }
}
