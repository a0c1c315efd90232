import { describe, expect, it } from 'vitest';
import { MigrationJobs } from '../../../src/controllers/migration-jobs.js';

/** A job the test finishes by hand. */
function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('MigrationJobs', () => {
  it('runs at most maxConcurrent jobs, queues the rest, and requeues them when a slot frees', async () => {
    const requeued: string[] = [];
    const jobs = new MigrationJobs<string>({ maxConcurrent: 2, requeue: (k) => requeued.push(k) });
    const a = deferred<string>();
    const b = deferred<string>();
    expect(jobs.submit('ns/a', () => a.promise)).toBe('running');
    expect(jobs.submit('ns/b', () => b.promise)).toBe('running');
    expect(jobs.submit('ns/c', () => Promise.resolve('c'))).toBe('queued');
    expect(jobs.submit('ns/c', () => Promise.resolve('c'))).toBe('queued');
    // Submitting a running key again does not start a second job.
    expect(jobs.submit('ns/a', () => Promise.reject(new Error('a second executor')))).toBe('running');
    expect([jobs.state('ns/a'), jobs.state('ns/c'), jobs.state('ns/d')]).toEqual(['running', 'queued', undefined]);
    expect(jobs.runningKeys()).toEqual(['ns/a', 'ns/b']);
    a.resolve('done a');
    await a.promise;
    await Promise.resolve();
    await new Promise((r) => setImmediate(r));
    expect(requeued).toEqual(['ns/a', 'ns/c']);
    expect(jobs.take('ns/a')).toEqual({ decision: 'done a' });
    expect(jobs.take('ns/a')).toBeUndefined();
    expect(jobs.submit('ns/c', () => Promise.resolve('c'))).toBe('running');
    expect(jobs.state('ns/c')).toBe('running');
    b.reject(new Error('fence timed out'));
    await jobs.idle();
    const failed = jobs.take('ns/b');
    expect(failed && 'error' in failed ? String(failed.error) : '').toBe('Error: fence timed out');
    expect(jobs.take('ns/c')).toEqual({ decision: 'c' });
    expect(jobs.runningKeys()).toEqual([]);
  });
});
