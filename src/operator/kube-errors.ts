import { WeirError } from '../runtime/errors.js';

// Status codes from @kubernetes/client-node errors (ApiException carries `code`).
const statusOf = (e: unknown): number | undefined =>
  typeof e === 'object' && e !== null ? ((e as { code?: number }).code ?? (e as { statusCode?: number }).statusCode) : undefined;

export const isNotFound = (e: unknown): boolean => statusOf(e) === 404;
export const isConflict = (e: unknown): boolean => statusOf(e) === 409;
export const isForbidden = (e: unknown): boolean => statusOf(e) === 403;
export const isGone = (e: unknown): boolean => statusOf(e) === 410;

/** The API server's own message from an ApiException body, for logs and conditions. */
export function kubeErrorMessage(e: unknown): string {
  const body = (e as { body?: unknown } | undefined)?.body;
  if (typeof body === 'string') {
    try {
      const parsed = JSON.parse(body) as { message?: string };
      if (parsed.message) return parsed.message;
    } catch {
      return body;
    }
  }
  if (body && typeof body === 'object' && 'message' in body) return String(body.message);
  return e instanceof Error ? e.message : String(e);
}

/** The object changed since it was read (409): reconciling again, from a fresh read, resolves it. */
export class KubeConflictError extends WeirError {
  constructor(message: string, cause?: unknown) {
    super(message, { retriable: true, reason: 'Conflict', cause });
  }
}
