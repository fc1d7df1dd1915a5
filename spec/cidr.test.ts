// CIDR blocks for trusted_networks (RFC 4632 §3.1, RFC 4291 §2.2 and §2.5.5.2, RFC 5952).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cidrContains, checkCidr, formatCidr, formatIp, inNetworks, parseCidr, parseIp, type Cidr } from '../src/policy/cidr';

const must = (s: string): Cidr => {
  const c = parseCidr(s);
  if (!c) throw new Error(`test CIDR ${s} did not parse`);
  return c;
};

describe('parseIp', () => {
  it.each([
    ['192.0.2.1', '192.0.2.1'],
    ['0.0.0.0', '0.0.0.0'],
    ['::', '::'],
    ['::1', '::1'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1'], // RFC 5952 §4.2.3: the longest run is compressed
    ['2001:db8::1:0:0:1', '2001:db8::1:0:0:1'], // equal runs: the first
    ['1:0:2:3:4:5:6:7', '1:0:2:3:4:5:6:7'], // §4.2.2: never "::" for one group
    ['::ffff:192.0.2.1', '::ffff:c000:201'],
    ['fe80::1%eth0', 'fe80::1'],
  ])('%s reads as %s', (input, canonical) => {
    const ip = parseIp(input);
    expect(ip).not.toBeNull();
    expect(formatIp(ip!)).toBe(canonical);
  });

  it.each(['', '1.2.3', '1.2.3.4.5', '256.0.0.1', '010.0.0.1', '1.2.3.4 ', 'a.b.c.d', ':::', '1::2::3', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7::8', '12345::', 'g::1', ':1::', '::1.2.3'])(
    'refuses %j',
    (input) => expect(parseIp(input)).toBeNull(),
  );
});

describe('parseCidr', () => {
  it('reads a bare address as a single host', () => {
    expect(formatCidr(must('192.0.2.7'))).toBe('192.0.2.7/32');
    expect(formatCidr(must('2001:db8::7'))).toBe('2001:db8::7/128');
  });

  it('normalises an IPv4-mapped block to IPv4', () => {
    expect(formatCidr(must('::ffff:10.0.0.0/104'))).toBe('10.0.0.0/8');
  });

  it.each([
    ['10.0.0.1/8', 'host bits'],
    ['10.0.0.0/33', 'prefix length'],
    ['2001:db8::/129', 'prefix length'],
    ['10.0.0.0/08', 'prefix length'],
    ['10.0.0.0/', 'prefix length'],
    ['example.com/8', 'not an IPv4'],
  ])('refuses %s (%s)', (input, why) => {
    const r = checkCidr(input);
    expect('problem' in r && r.problem).toContain(why);
    expect(parseCidr(input)).toBeNull();
  });
});

describe('cidrContains / inNetworks', () => {
  const loopback = [must('127.0.0.0/8'), must('::1/128')];

  it.each([
    ['127.0.0.1', true],
    ['127.255.255.254', true],
    ['128.0.0.1', false],
    ['::1', true],
    ['::2', false],
    ['::ffff:127.0.0.1', true], // a dual-stack socket's view of an IPv4 client
    ['::ffff:128.0.0.1', false],
    ['::127.0.0.1', false], // IPv4-compatible (deprecated), not mapped
    ['not an ip', false],
  ])('%s in loopback networks: %s', (ip, expected) => {
    expect(inNetworks(ip, loopback)).toBe(expected);
  });

  it('an IPv4 client matches an IPv6 block only through its mapped form', () => {
    expect(cidrContains(must('::/0'), '192.0.2.1')).toBe(true);
    expect(cidrContains(must('::ffff:0:0/96'), '192.0.2.1')).toBe(true);
    expect(cidrContains(must('2001:db8::/32'), '192.0.2.1')).toBe(false);
    expect(cidrContains(must('0.0.0.0/0'), '2001:db8::1')).toBe(false);
  });

  it('/0 contains every address of its family', () => {
    expect(cidrContains(must('0.0.0.0/0'), '255.255.255.255')).toBe(true);
    expect(cidrContains(must('::/0'), 'ffff::')).toBe(true);
  });

  it('no networks: nobody is trusted', () => {
    expect(inNetworks('127.0.0.1', [])).toBe(false);
  });
});

/** A random prefix, an address sharing exactly those leading bits, and a bit index inside the prefix. */
function blockArb(family: 4 | 6) {
  const n = family === 4 ? 4 : 16;
  return fc
    .record({
      addr: fc.uint8Array({ minLength: n, maxLength: n }),
      other: fc.uint8Array({ minLength: n, maxLength: n }),
      prefix: fc.integer({ min: 1, max: n * 8 }),
    })
    .chain((r) => fc.integer({ min: 0, max: r.prefix - 1 }).map((bit) => ({ ...r, bit })));
}

const bitOf = (b: Uint8Array, i: number) => ((b[i >> 3] ?? 0) >> (7 - (i & 7))) & 1;

/** Keeps the first `prefix` bits of `a` and takes the rest from `b`. */
function splice(a: Uint8Array, b: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length * 8; i++) {
    const v = i < prefix ? bitOf(a, i) : bitOf(b, i);
    out[i >> 3] = (out[i >> 3] ?? 0) | (v << (7 - (i & 7)));
  }
  return out;
}

function flip(a: Uint8Array, i: number): Uint8Array {
  const out = a.slice();
  out[i >> 3] = (out[i >> 3] ?? 0) ^ (1 << (7 - (i & 7)));
  return out;
}

describe.each([4, 6] as const)('properties, IPv%i', (family) => {
  const network = (bytes: Uint8Array, prefix: number) => `${formatIp({ family, bytes: splice(bytes, new Uint8Array(bytes.length), prefix) })}/${prefix}`;

  it('an address inside a random prefix is contained', () => {
    fc.assert(
      fc.property(blockArb(family), ({ addr, other, prefix }) => {
        const c = must(network(addr, prefix));
        const inside = formatIp({ family, bytes: splice(addr, other, prefix) });
        expect(cidrContains(c, inside)).toBe(true);
      }),
    );
  });

  it('flipping any bit of the prefix puts the address outside', () => {
    fc.assert(
      fc.property(blockArb(family), ({ addr, other, prefix, bit }) => {
        const c = must(network(addr, prefix));
        const outside = formatIp({ family, bytes: flip(splice(addr, other, prefix), bit) });
        expect(cidrContains(c, outside)).toBe(false);
      }),
    );
  });

  it('format then parse gives the same block', () => {
    fc.assert(
      fc.property(blockArb(family), ({ addr, prefix }) => {
        const c = must(network(addr, prefix));
        const again = must(formatCidr(c));
        expect(again.prefix).toBe(c.prefix);
        expect(Array.from(again.bytes)).toEqual(Array.from(c.bytes));
      }),
    );
  });
});

describe('agrees with fast-check address generators', () => {
  it('every fc.ipV6() address parses and its canonical form parses to the same bytes', () => {
    fc.assert(
      fc.property(fc.ipV6(), (s) => {
        const ip = parseIp(s);
        expect(ip).not.toBeNull();
        expect(Array.from(parseIp(formatIp(ip!))!.bytes)).toEqual(Array.from(ip!.bytes));
      }),
    );
  });

  it('every fc.ipV4() address is contained in its own /32 and in 0.0.0.0/0', () => {
    fc.assert(
      fc.property(fc.ipV4(), (s) => {
        expect(cidrContains(must(s), s)).toBe(true);
        expect(cidrContains(must('0.0.0.0/0'), s)).toBe(true);
      }),
    );
  });
});
