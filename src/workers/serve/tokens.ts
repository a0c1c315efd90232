// Bearer tokens of endpoints with `auth`. In the pod, each Secret an Endpoint names is mounted
// as a directory `<tokens-dir>/<secret>/` holding one file per key, each file one allowed
// token. The directories are read again on an interval and each Secret's set is swapped
// whole, so a request sees the old set or the new one, never a half-read one. Tokens are
// kept only as SHA-256 digests and compared with timingSafeEqual against every allowed
// digest, so neither the answer time nor an early exit says how much of a token was right.
import { createHash, timingSafeEqual } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage, type Logger } from '../../runtime/log.js';

export type TokenCheck = 'allowed' | 'denied';

interface SecretTokens {
  digests: Buffer[];
  /** Why the set is empty when it could not be read (logged when it changes). */
  problem?: string;
  /** Names of the files read, for the log line when they change. */
  keys: string[];
}

const digest = (token: string): Buffer => createHash('sha256').update(token, 'utf8').digest();

/** The token of a request: `Authorization: Bearer <t>`, else `?token=<t>`. */
export function presentedToken(authorization: string | undefined, queryToken: string | null): string | undefined {
  const bearer = authorization === undefined ? undefined : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization)?.[1];
  if (bearer !== undefined) return bearer;
  return queryToken !== null && queryToken !== '' ? queryToken : undefined;
}

/** Reads every file of `dir` except kubelet's hidden `..data` entries, trimmed; empty files hold no token. */
export async function readSecretDir(dir: string): Promise<{ keys: string[]; tokens: string[] }> {
  const entries = await readdir(dir, { withFileTypes: true });
  const keys: string[] = [];
  const tokens: string[] = [];
  for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    // A Secret volume holds `..data` and a timestamped `..<time>` directory; keys are symlinks into them.
    if (entry.name.startsWith('..') || entry.isDirectory()) continue;
    let text: string;
    try {
      text = await readFile(join(dir, entry.name), 'utf8');
    } catch (e) {
      // A key removed between readdir and readFile is simply no longer a token.
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'EISDIR') continue;
      throw e;
    }
    const token = text.trim();
    if (token === '') continue;
    keys.push(entry.name);
    tokens.push(token);
  }
  return { keys, tokens };
}

/**
 * Sets read from Secrets mounted the kubelet way, read again on an interval and swapped whole:
 * one read at a time, a call during a read waits for it. TokenStore (static tokens) and
 * SigningKeyStore (jwt.ts) read their files in `readAll`.
 */
export abstract class MountedSecrets {
  private timer: NodeJS.Timeout | undefined;
  private reading: Promise<void> | undefined;

  /** Reads every Secret once now; then again every `intervalMs`. */
  async start(intervalMs: number): Promise<void> {
    await this.reload();
    this.timer = setInterval(() => void this.reload(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Reads the Secrets again and swaps in each one's new set. */
  reload(): Promise<void> {
    this.reading ??= this.readAll().finally(() => (this.reading = undefined));
    return this.reading;
  }

  protected abstract readAll(): Promise<void>;
}

/** Allowed tokens per Secret name, read from `<dir>/<secret>/`, for the Secrets `secrets()` names. */
export class TokenStore extends MountedSecrets {
  private sets = new Map<string, SecretTokens>();

  constructor(
    /** Where the Secrets are mounted; undefined when `--tokens-dir` was not given (every token is refused). */
    private readonly dir: string | undefined,
    private readonly secrets: () => Iterable<string>,
    private readonly log: Logger,
  ) {
    super();
  }

  check(secret: string, token: string): TokenCheck {
    return this.match(secret, token) === undefined ? 'denied' : 'allowed';
  }

  /** The key (file name) in the Secret that holds `token`, or undefined: a name that says which token it was without being it. */
  match(secret: string, token: string): string | undefined {
    const set = this.sets.get(secret);
    const allowed = set?.digests ?? [];
    const given = digest(token);
    let matched = -1;
    // Every digest is compared, whatever matched first.
    allowed.forEach((d, i) => {
      if (timingSafeEqual(d, given) && matched < 0) matched = i;
    });
    return matched < 0 ? undefined : set?.keys[matched];
  }

  protected async readAll(): Promise<void> {
    const next = new Map<string, SecretTokens>();
    for (const secret of new Set(this.secrets())) next.set(secret, await this.readSecret(secret));
    for (const [secret, now] of next) {
      const before = this.sets.get(secret);
      if (now.problem !== undefined && now.problem !== before?.problem) {
        this.log.error('endpoint tokens unreadable: every request to the endpoints using this Secret gets 403 until it can be read', {
          secret,
          problem: now.problem,
        });
      } else if (
        now.problem === undefined &&
        (before === undefined || before.problem !== undefined || before.keys.join() !== now.keys.join() || !sameDigests(before, now))
      ) {
        this.log.info('endpoint tokens loaded', { secret, tokens: now.digests.length, keys: now.keys });
        if (now.digests.length === 0) this.log.warn('endpoint tokens: the Secret holds no token; every request gets 403', { secret });
      }
    }
    this.sets = next;
  }

  private async readSecret(secret: string): Promise<SecretTokens> {
    if (this.dir === undefined) return { digests: [], keys: [], problem: 'weir serve was started without --tokens-dir' };
    const dir = join(this.dir, secret);
    try {
      const { keys, tokens } = await readSecretDir(dir);
      return { digests: tokens.map(digest), keys };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const problem = code === 'ENOENT' ? `${dir} does not exist: mount the Secret ${secret} there` : `${dir}: ${errorMessage(e)}`;
      return { digests: [], keys: [], problem };
    }
  }
}

function sameDigests(a: SecretTokens, b: SecretTokens): boolean {
  return a.digests.length === b.digests.length && a.digests.every((d, i) => b.digests[i]?.equals(d));
}
