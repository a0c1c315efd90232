// The planner checks IP parameters without node:net; it must accept exactly what node:net does,
// except zone ids (fe80::1%eth0), which ClickHouse's IPv6 does not take.
import { isIPv4, isIPv6 } from 'node:net';
import { describe, expect, it } from 'vitest';
import { isIPv4Text, isIPv6Text } from '../../../../src/plan/endpoint/ip-text.js';

const V4 = [
  '0.0.0.0',
  '10.0.0.1',
  '255.255.255.255',
  '10.0.0.256',
  '01.2.3.4',
  '1.2.3',
  '1.2.3.4.5',
  '1..2.3',
  ' 1.2.3.4',
  '1.2.3.4 ',
  'a.b.c.d',
  '',
  '1.2.3.-4',
  '1e1.2.3.4',
];
const V6 = [
  '::',
  '::1',
  '1::',
  '1:2:3:4:5:6:7:8',
  '1:2:3:4:5:6:7::',
  '::2:3:4:5:6:7:8',
  '1:2:3:4:5:6:7:8:9',
  '1:2:3:4:5:6:7',
  '1::2::3',
  ':::',
  ':1::2',
  '1::2:',
  '1:2:3:4:5:6::7:8',
  'g::1',
  '12345::1',
  'ABCD:ef01::',
  '::ffff:1.2.3.4',
  '1:2:3:4:5:6:1.2.3.4',
  '1:2:3:4:5:6:7:1.2.3.4',
  '1.2.3.4::',
  '::1.2.3.4',
  '::1.2.3.256',
  '1:2:3:4:5::1.2.3.4',
  '1.2.3.4',
  '',
  ':',
  '::ffff:1.2.3',
];

describe('IP parameter text', () => {
  it('IPv4: the same verdict as node:net for every case', () => {
    expect(V4.map(isIPv4Text)).toEqual(V4.map((t) => isIPv4(t)));
    expect(V4.filter(isIPv4Text)).toEqual(['0.0.0.0', '10.0.0.1', '255.255.255.255']);
  });

  it('IPv6: the same verdict as node:net for every case', () => {
    expect(V6.map(isIPv6Text)).toEqual(V6.map((t) => isIPv6(t)));
    expect(V6.filter(isIPv6Text)).toEqual([
      '::',
      '::1',
      '1::',
      '1:2:3:4:5:6:7:8',
      '1:2:3:4:5:6:7::',
      '::2:3:4:5:6:7:8',
      'ABCD:ef01::',
      '::ffff:1.2.3.4',
      '1:2:3:4:5:6:1.2.3.4',
      '::1.2.3.4',
      '1:2:3:4:5::1.2.3.4',
    ]);
  });

  it('IPv6 with a zone id is refused (node:net accepts it; a ClickHouse IPv6 cannot hold one)', () => {
    expect(isIPv6('fe80::1%eth0')).toBe(true);
    expect(isIPv6Text('fe80::1%eth0')).toBe(false);
  });
});
