import winston from 'winston';

export type Logger = winston.Logger;

export interface LogOptions {
  level?: string;
  /** json (default: one JSON object a line, for log pipelines) or pretty (for a terminal). */
  format?: 'json' | 'pretty';
  component?: string;
}

/**
 * Structured logs. Never pass credentials, query parameter values or row data as fields:
 * resource coordinates (kind/namespace/name), ids, counts and durations only.
 */
export function createLogger(opts: LogOptions = {}): Logger {
  const pretty = (opts.format ?? process.env.WEIR_LOG_FORMAT) === 'pretty';
  return winston.createLogger({
    level: opts.level ?? process.env.WEIR_LOG_LEVEL ?? 'info',
    defaultMeta: opts.component ? { component: opts.component } : {},
    format: pretty
      ? winston.format.combine(
          winston.format.timestamp({ format: 'HH:mm:ss' }),
          winston.format.printf(({ timestamp, level, message, component: _c, ...rest }) => {
            const fields = Object.entries(rest)
              .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
              .join(' ');
            return `${String(timestamp)} ${level} ${String(message)}${fields ? ` ${fields}` : ''}`;
          }),
        )
      : winston.format.combine(winston.format.timestamp(), winston.format.errors({ stack: false }), winston.format.json()),
    transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug', 'verbose', 'silly'] })],
  });
}

/** Fields identifying a resource, on every log line that concerns it. */
export const resourceFields = (kind: string, namespace: string | undefined, name: string) => ({
  kind,
  namespace: namespace ?? '',
  name,
});

export const errorMessage = (e: unknown): string => (e instanceof Error ? e.message : String(e));
