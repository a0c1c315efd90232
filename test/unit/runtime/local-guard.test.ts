import { describe, expect, it } from 'vitest';
import { hostOfHeader, localGuardPolicy, refuseLocalRequest } from '../../../src/runtime/local-guard.js';

const loopback = localGuardPolicy({ bindHost: '127.0.0.1', allowOrigins: [] });

describe('Host', () => {
  it('accepts localhost and IP addresses, with or without the port, and refuses other names', () => {
    for (const host of ['127.0.0.1:8123', 'localhost:8123', 'LOCALHOST', '[::1]:8123', '::1', '10.1.2.3:9', 'localhost.:8123']) {
      expect(refuseLocalRequest({ host }, loopback)).toBeUndefined();
    }
    expect(refuseLocalRequest({ host: 'attacker.example:8123' }, loopback)).toEqual({
      kind: 'host',
      message:
        "Refused a request for Host 'attacker.example:8123': this server answers to localhost, localhost.localdomain, ip6-localhost, 127.0.0.1 and IP addresses " +
        '(a page on another name may be DNS rebinding). Start it with --allow-host attacker.example to allow that name',
    });
    expect(refuseLocalRequest({ host: 'localhost.attacker.example' }, loopback)?.kind).toBe('host');
    expect(refuseLocalRequest({}, loopback)).toBeUndefined();
  });

  it('accepts the bound name, the machine names on 0.0.0.0, --allow-host names, and any with *', () => {
    expect(refuseLocalRequest({ host: 'devbox:8123' }, localGuardPolicy({ bindHost: 'devbox' }))).toBeUndefined();
    expect(refuseLocalRequest({ host: 'laptop:8123' }, localGuardPolicy({ bindHost: '0.0.0.0', machineNames: ['Laptop'] }))).toBeUndefined();
    expect(refuseLocalRequest({ host: 'laptop:8123' }, localGuardPolicy({ bindHost: '127.0.0.1', machineNames: ['laptop'] }))?.kind).toBe('host');
    expect(refuseLocalRequest({ host: 'ch.internal' }, localGuardPolicy({ bindHost: '0.0.0.0', allowHosts: ['ch.internal'] }))).toBeUndefined();
    expect(refuseLocalRequest({ host: 'anything.example' }, localGuardPolicy({ bindHost: '0.0.0.0', allowHosts: ['*'] }))).toBeUndefined();
  });

  it('reads the name out of a Host header', () => {
    expect(hostOfHeader('[::1]:8123')).toBe('::1');
    expect(hostOfHeader('Example.COM:80')).toBe('example.com');
    expect(hostOfHeader('::1')).toBe('::1');
  });
});

describe('Origin', () => {
  it('refuses any browser origin unless allowed, and cross-site fetches without one', () => {
    expect(refuseLocalRequest({ host: 'localhost', origin: 'http://evil.example' }, loopback)).toEqual({
      kind: 'origin',
      message:
        "Refused a request from the web page at Origin 'http://evil.example': browsers may not send queries here. Start the server with --allow-origin http://evil.example to allow it",
    });
    expect(refuseLocalRequest({ host: 'localhost', origin: 'null' }, loopback)?.kind).toBe('origin');
    expect(refuseLocalRequest({ host: 'localhost', origin: 'http://localhost:3000' }, loopback)?.kind).toBe('origin');
    expect(refuseLocalRequest({ host: 'localhost', 'sec-fetch-site': 'cross-site' }, loopback)?.kind).toBe('origin');
    expect(refuseLocalRequest({ host: 'localhost', 'sec-fetch-site': 'same-site' }, loopback)?.kind).toBe('origin');
    expect(refuseLocalRequest({ host: 'localhost', 'sec-fetch-site': 'none' }, loopback)).toBeUndefined();

    const app = localGuardPolicy({ bindHost: '127.0.0.1', allowOrigins: ['http://localhost:3000/'] });
    expect(refuseLocalRequest({ host: 'localhost', origin: 'http://localhost:3000' }, app)).toBeUndefined();
    expect(refuseLocalRequest({ host: 'localhost', origin: 'http://localhost:3001' }, app)?.kind).toBe('origin');
    expect(refuseLocalRequest({ host: 'localhost', origin: 'http://x' }, localGuardPolicy({ bindHost: '127.0.0.1', allowOrigins: ['*'] }))).toBeUndefined();
  });

  it('is not checked where the server has no --allow-origin (Host only)', () => {
    expect(refuseLocalRequest({ host: 'localhost', origin: 'http://evil.example' }, localGuardPolicy({ bindHost: '127.0.0.1' }))).toBeUndefined();
  });
});
