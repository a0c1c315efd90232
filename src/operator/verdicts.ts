import type { KubernetesObject } from '@kubernetes/client-node';

interface Judged extends KubernetesObject {
  status?:
    | { version?: number | undefined; phase?: string | undefined; conditions?: { type: string; status: string; reason?: string | undefined }[] | undefined }
    | undefined;
}

/** What dependants' decisions read of an object: its spec (generation), version, phase, Ready, deletion. */
export function verdictOf(obj: Judged): string {
  const ready = obj.status?.conditions?.find((c) => c.type === 'Ready');
  return [
    obj.metadata?.generation,
    obj.status?.version,
    obj.status?.phase,
    ready?.status,
    ready?.reason,
    obj.metadata?.deletionTimestamp ? 'deleting' : '',
  ].join('|');
}

/** Remembers each object's last verdict, to tell a change dependants care about from a status patch they do not read. */
export class SeenVerdicts {
  private readonly seen = new Map<string, string>();

  /** True when the object is new, deleted, or its verdict differs from the one last seen. */
  changed(obj: Judged, deleted = false): boolean {
    const key = `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
    if (deleted) return this.seen.delete(key) || true;
    const verdict = verdictOf(obj);
    if (this.seen.get(key) === verdict) return false;
    this.seen.set(key, verdict);
    return true;
  }
}
