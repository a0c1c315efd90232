import type { CommonStatus } from '../api/common.js';
import { healthConditions, findCondition, type Health } from './conditions.js';
import type { EventRecord } from './types.js';

/**
 * The common part of every kind's status: observedGeneration, phase and the kstatus
 * conditions; plus an event when the Ready reason changes (not on every reconcile).
 */
export function healthStatus<S extends CommonStatus>(
  previous: S | undefined,
  generation: number,
  health: Health,
  phase: string,
  now: Date,
): { status: CommonStatus; events: EventRecord[] } {
  const before = findCondition(previous?.conditions, 'Ready');
  const conditions = healthConditions(previous?.conditions, health, generation, now);
  const events: EventRecord[] = [];
  if (before?.reason !== health.reason || before?.status !== (health.state === 'Ready' ? 'True' : 'False')) {
    events.push({ type: health.state === 'Stalled' ? 'Warning' : 'Normal', reason: health.reason, message: health.message });
  }
  return { status: { observedGeneration: generation, phase, conditions }, events };
}
