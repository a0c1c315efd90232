// Long parameter values through a real `weir serve` process and the real engine: a 20,000-character
// String and a 3,000-item Array(UInt32) reach ClickHouse unchanged (weir sends them in a multipart
// body, not in the URL, which ClickHouse's HTTP server refuses past 16 KiB with 431), from a POST
// JSON body and from a GET query string; a value past MAX_PARAM_BYTES is a 400 naming it; a GET
// URL past node's 16 KiB header limit is refused by the endpoint port itself (431: POST instead).
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endpoint, inNamespace, node, pipe, uniqueNamespace, withNodes, withParams } from '../../../fixtures/builders.js';
import { startTestClickHouse, type TestClickHouse } from '../../../fixtures/clickhouse.js';
import { compiled, readyz, startServe, type ServeProcess } from '../../../fixtures/serve.js';
import { MAX_PARAM_BYTES } from '../../../../src/plan/endpoint/params.js';

let server: TestClickHouse;
let serve: ServeProcess;

beforeAll(async () => {
  server = await startTestClickHouse();
  const ns = uniqueNamespace('long-params');
  const db = ns.replace(/-/g, '_');
  await server.ch.command(`CREATE DATABASE ${db}`);
  const echo = pipe(
    'echo',
    inNamespace(ns),
    withNodes(
      node(
        'main',
        `SELECT length({s:String}) AS bytes, lower(hex(MD5({s:String}))) AS md5,
                length({ids:Array(UInt32)}) AS n, arraySum({ids:Array(UInt32)}) AS total`,
      ),
    ),
  );
  serve = await startServe(server.url, [
    compiled(endpoint('echo', 'echo', inNamespace(ns), withParams({ name: 's', default: '' }, { name: 'ids', default: '' })), echo, db),
  ]);
  await readyz(serve, 200);
});

afterAll(async () => {
  await serve?.stop();
  await server?.stop();
});

interface Echo {
  bytes: string;
  md5: string;
  n: string;
  total: string;
}

const md5 = (s: string) => createHash('md5').update(s, 'utf8').digest('hex');
const ids = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
const sum = (xs: number[]) => String(xs.reduce((a, b) => a + b, 0));
/** Quotes, a backslash, a tab, a newline, a multi-byte letter and URL punctuation: every escape on the way. */
const awkward = (chars: number) => "a'b\\c\td\ne é ()!~*".repeat(Math.ceil(chars / 17)).slice(0, chars);

async function post(body: unknown): Promise<{ status: number; json: { data?: Echo[]; error?: string } }> {
  const res = await fetch(`${serve.base}/v0/pipes/echo.json`, { method: 'POST', body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as { data?: Echo[]; error?: string } };
}

describe('long parameter values', () => {
  it('takes a 20,000-character String and a 3,000-item Array(UInt32) from a POST body, unchanged', async () => {
    const s = awkward(20_000);
    const res = await post({ s, ids: ids(3000) });
    expect(res.status, res.json.error).toBe(200);
    expect(s.length).toBe(20_000);
    expect(res.json.data).toEqual([{ bytes: String(Buffer.byteLength(s)), md5: md5(s), n: '3000', total: sum(ids(3000)) }]);
  });

  it('takes long values from a GET query string too, as long as the URL fits the port (16 KiB)', async () => {
    // 6,000 characters that stay as they are in a URL but take three bytes each once URL-encoded towards ClickHouse.
    const s = '()!~*'.repeat(1200);
    const list = ids(1500);
    const url = `${serve.base}/v0/pipes/echo.json?s=${s}&ids=${list.join(',')}`;
    expect(url.length).toBeLessThan(16 * 1024);
    const res = await fetch(url);
    const body = (await res.json()) as { data?: Echo[]; error?: string };
    expect(res.status, body.error).toBe(200);
    expect(body.data).toEqual([{ bytes: '6000', md5: md5(s), n: '1500', total: sum(list) }]);
  });

  it('answers 400 naming the parameter and the limit for a value past it, String or Array', async () => {
    const long = await post({ s: 'x'.repeat(MAX_PARAM_BYTES + 1) });
    expect(long.status).toBe(400);
    expect(long.json.error).toBe(
      `parameter s is ${MAX_PARAM_BYTES + 1} bytes as sent to ClickHouse; a parameter value may be at most ${MAX_PARAM_BYTES} bytes; send fewer or shorter values`,
    );
    // 30,000 six-digit ids: '[100000,…]' is 210,001 bytes.
    const many = await post({ ids: Array.from({ length: 30_000 }, (_, i) => 100_000 + i) });
    expect(many.status).toBe(400);
    expect(many.json.error).toBe(
      `parameter ids is 210001 bytes as sent to ClickHouse; a parameter value may be at most ${MAX_PARAM_BYTES} bytes; send fewer or shorter values`,
    );
    // Right at the limit is fine.
    const s = 'y'.repeat(MAX_PARAM_BYTES);
    expect(await post({ s })).toEqual({
      status: 200,
      json: expect.objectContaining({ data: [{ bytes: String(MAX_PARAM_BYTES), md5: md5(s), n: '0', total: '0' }] }) as unknown,
    });
  });

  it('refuses a GET URL past 16 KiB at the port itself (node answers 431): long values are POSTed', async () => {
    const res = await fetch(`${serve.base}/v0/pipes/echo.json?s=${'z'.repeat(20_000)}`);
    expect(res.status).toBe(431);
    // The server goes on answering.
    expect((await post({ s: 'ok' })).status).toBe(200);
  });
});
