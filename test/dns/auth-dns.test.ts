/**
 * src/dns/auth-dns.ts against REAL DNS: a private dnsmasq on a loopback port
 * serving TXT (RFC 7208 §3.3 and RFC 6376 §3.6.2.2 joining of
 * character-strings, several records, a hostile flood), A, AAAA, MX and PTR
 * (RFC 1035 §3.5, RFC 3596 §2.5), NXDOMAIN vs NODATA, SERVFAIL, REFUSED and
 * silence (temp, bounded), the cache and its shared in-flight queries; then
 * the keys `petrel dkim keygen` makes, published through dnsmasq, fetched
 * with dkimKey, parsed, and used to sign a message that verifies.
 * If dnsmasq is missing, beforeAll fails with the reason: nothing skips.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BodyHasher, rawFields } from '../../src/auth/dkim/canon';
import { parseKeyRecord } from '../../src/auth/dkim/key-record';
import { keyForDomain } from '../../src/auth/dkim/keys';
import { loadSigningKeys } from '../../src/auth/load-keys';
import { signMessage } from '../../src/auth/dkim/sign';
import { verifyMessage, type KeyAnswer } from '../../src/auth/dkim/verify';
import { dkimCommand } from '../../src/cli/dkim-cmd';
import { createAuthDns, MAX_TXT_RECORDS, pickKeyRecord, queryName, reverseName, type AuthDns, type AuthDnsOptions } from '../../src/dns/auth-dns';
import { startDnsZone, startSilentServer, type DnsZoneServer } from '../helpers/dnsmasq';

const dir = mkdtempSync(join(tmpdir(), 'petrel-authdns-'));
let zone: DnsZoneServer;
const published = new Map<string, string[]>(); // selector → the keygen record's character-strings

/** Runs `petrel dkim keygen` and returns the quoted strings of the record it prints. */
async function keygen(selector: string, type: 'rsa' | 'ed25519'): Promise<string[]> {
  let out = '';
  const status = await dkimCommand(['keygen', 'example.test', selector, '--type', type], { dataDir: dir, dkimSign: [] }, (s) => (out += `${s}\n`), () => undefined);
  expect(status).toBe(0);
  const record = /IN TXT \(([^)]*)\)/.exec(out)?.[1] ?? '';
  return [...record.matchAll(/"([^"]*)"/g)].map((m) => m[1] ?? '');
}

const flood = Array.from({ length: MAX_TXT_RECORDS + 8 }, (_, i) => `--txt-record=flood.test,r${i}`);

beforeAll(async () => {
  published.set('rsa', await keygen('rsa', 'rsa'));
  published.set('ed', await keygen('ed', 'ed25519'));
  zone = await startDnsZone({
    local: ['test', '127.in-addr.arpa'],
    mx: [{ domain: 'mx.test', host: 'mail.mx.test', preference: 10 }],
    hosts: [{ name: 'h.test', ipv4: '127.0.0.9', ipv6: '2001:db8::9' }],
    servfail: ['servfail.test'],
    silent: ['silent.test'],
    extra: [
      '--txt-record=one.test,v=spf1 -all',
      // dnsmasq takes each comma-separated part of the option as one character-string.
      '--txt-record=multi.test,v=spf1 ,ip4:127.0.0.1 ,-all',
      '--txt-record=glued.test,abc,def',
      '--txt-record=two.test,first',
      '--txt-record=two.test,second',
      `--txt-record=huge.test,${Array.from({ length: 70 }, () => 'y'.repeat(250)).join(',')}`,
      '--txt-record=huge.test,small',
      '--txt-record=xn--bcher-kva.test,idn',
      '--txt-record=cache.test,cached',
      ...flood,
      '--txt-record=sel._domainkey.keys.test,v=spf1 exp=explain.test -all',
      '--txt-record=sel._domainkey.keys.test,v=DKIM1; k=ed25519; p=AAAA',
      '--txt-record=bad._domainkey.keys.test,not a key',
      ...[...published].map(([sel, strings]) => `--txt-record=${sel}._domainkey.example.test,${strings.join(',')}`),
    ],
  });
});

afterAll(async () => {
  await zone?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function adapter(opts: Partial<AuthDnsOptions> = {}): AuthDns {
  return createAuthDns({ servers: [zone.server], timeoutMs: 300, tries: 1, ...opts });
}

describe('TXT (RFC 7208 §3.3, RFC 6376 §3.6.2.2)', () => {
  it('one record of one string', async () => {
    expect(await adapter().txt('one.test')).toEqual(['v=spf1 -all']);
  });

  it('the character-strings of a record are joined with nothing added', async () => {
    expect(await adapter().txt('multi.test')).toEqual(['v=spf1 ip4:127.0.0.1 -all']);
    expect(await adapter().txtJoined('glued.test')).toEqual(['abcdef']);
  });

  it('several records: one string each', async () => {
    expect([...((await adapter().txt('two.test')) as string[])].sort()).toEqual(['first', 'second']);
  });

  it('NXDOMAIN and NODATA are told apart', async () => {
    expect(await adapter().txt('nothing.test')).toEqual({ error: 'nxdomain' });
    expect(await adapter().txt('h.test')).toEqual({ error: 'nodata' });
  });

  it('a hostile flood keeps the first 32 records; a record over 16 KiB is dropped, not cut', async () => {
    const flooded = await adapter().txt('flood.test');
    expect(Array.isArray(flooded) && flooded.length).toBe(MAX_TXT_RECORDS);
    expect(await adapter().txt('huge.test')).toEqual(['small']);
  });

  it('case, a root dot and a U-label do not matter', async () => {
    expect(await adapter().txt('ONE.Test.')).toEqual(['v=spf1 -all']);
    expect(await adapter().txt('bücher.test')).toEqual(['idn']);
  });
});

describe('A, AAAA, MX, PTR', () => {
  it('addresses, and NODATA for a type the name lacks', async () => {
    const dns = adapter();
    expect(await dns.a('h.test')).toEqual(['127.0.0.9']);
    expect(await dns.aaaa('h.test')).toEqual(['2001:db8::9']);
    expect(await dns.a('one.test')).toEqual({ error: 'nodata' });
    expect(await dns.aaaa('nothing.test')).toEqual({ error: 'nxdomain' });
  });

  it('MX gives exchange and priority', async () => {
    expect(await adapter().mx('mx.test')).toEqual([{ exchange: 'mail.mx.test', priority: 10 }]);
    expect(await adapter().mx('one.test')).toEqual({ error: 'nodata' });
  });

  it('PTR takes an IP, IPv4 or IPv6', async () => {
    expect(await adapter().ptr('127.0.0.9')).toEqual(['h.test']);
    expect(await adapter().ptr('2001:db8::9')).toEqual(['h.test']);
    expect(await adapter().ptr('127.0.0.77')).toEqual({ error: 'nxdomain' });
  });

  it('reverse names (RFC 1035 §3.5, RFC 3596 §2.5)', () => {
    expect(reverseName('192.0.2.1')).toBe('1.2.0.192.in-addr.arpa');
    expect(reverseName('2001:db8::567:89ab')).toBe('b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa');
    expect(reverseName('not-an-ip')).toBeNull();
  });
});

describe('failures: temp, bounded, never thrown', () => {
  it('SERVFAIL and REFUSED', async () => {
    expect(await adapter().txt('x.servfail.test')).toEqual({ error: 'temp' });
    expect(await adapter().a('example.org')).toEqual({ error: 'temp' });
  });

  it('an upstream that never answers', async () => {
    expect(await adapter().txt('x.silent.test')).toEqual({ error: 'temp' });
  });

  it('a resolver that never replies: every method gives temp', async () => {
    const silent = await startSilentServer();
    try {
      const dns = createAuthDns({ servers: [silent], timeoutMs: 100, tries: 1 });
      const answers = await Promise.all([dns.txt('one.test'), dns.a('h.test'), dns.aaaa('h.test'), dns.mx('mx.test'), dns.ptr('127.0.0.9')]);
      expect(answers).toEqual(Array.from({ length: 5 }, () => ({ error: 'temp' })));
      expect(await dns.dkimKey('rsa._domainkey.example.test')).toEqual({ error: 'temp' });
      expect(silent.queries()).toBeGreaterThan(0);
    } finally {
      await silent.close();
    }
  });

  it('a name DNS cannot hold is nxdomain without a query', async () => {
    const silent = await startSilentServer();
    try {
      const dns = createAuthDns({ servers: [silent], timeoutMs: 100, tries: 1 });
      for (const bad of [`${'a'.repeat(64)}.test`, `${'a.'.repeat(127)}test`, 'a..test', 'a b.test', 'a\\.b.test', '', '.']) {
        expect(await dns.txt(bad), bad).toEqual({ error: 'nxdomain' });
      }
      expect(await dns.ptr('999.1.1.1')).toEqual({ error: 'nxdomain' });
      expect(silent.queries()).toBe(0);
      expect(queryName('_dmarc.Example.COM.')).toBe('_dmarc.example.com');
    } finally {
      await silent.close();
    }
  });
});

describe('cache', () => {
  /** Queries dnsmasq logged for `name`, after a barrier query shows every earlier line has arrived. */
  let barriers = 0;
  async function queriesFor(name: string): Promise<number> {
    const barrier = `barrier${++barriers}.test`;
    await adapter({ cacheTtlS: 0 }).a(barrier);
    for (let i = 0; i < 200 && !zone.log().includes(`${barrier} from`); i++) await new Promise((r) => setTimeout(r, 10));
    return zone.log().split('\n').filter((l) => l.includes(`] ${name} from`)).length;
  }

  it('a second ask is answered from the cache until the TTL passes (injected clock)', async () => {
    let now = 1_000_000;
    const dns = adapter({ cacheTtlS: 60, now: () => now });
    expect(await dns.txt('cache.test')).toEqual(['cached']);
    expect(await dns.txt('CACHE.test')).toEqual(['cached']);
    expect(await queriesFor('cache.test')).toBe(1);
    now += 61_000;
    expect(await dns.txt('cache.test')).toEqual(['cached']);
    expect(await queriesFor('cache.test')).toBe(2);
  });

  it('negative answers are cached too; concurrent asks share one query', async () => {
    const dns = adapter();
    await Promise.all(Array.from({ length: 5 }, () => dns.txt('absent.test')));
    expect(await dns.txt('absent.test')).toEqual({ error: 'nxdomain' });
    expect(await queriesFor('absent.test')).toBe(1);
  });

  it('temp is never cached', async () => {
    const silent = await startSilentServer();
    try {
      const dns = createAuthDns({ servers: [silent], timeoutMs: 100, tries: 1 });
      await dns.txt('one.test');
      const first = silent.queries();
      await dns.txt('one.test');
      expect(silent.queries()).toBeGreaterThan(first);
    } finally {
      await silent.close();
    }
  });
});

describe('dkimKey (RFC 6376 §3.6.2.2)', () => {
  it('several TXT records: the one with a p= tag, not an SPF record whose exp= contains "p="', async () => {
    expect(await adapter().dkimKey('sel._domainkey.keys.test')).toBe('v=DKIM1; k=ed25519; p=AAAA');
  });

  it('the choice among records does not depend on their order', () => {
    const spf = 'v=spf1 exp=explain.test -all';
    const key = 'v=DKIM1; k=ed25519; p=AAAA';
    expect(pickKeyRecord([spf, key])).toBe(key);
    expect(pickKeyRecord([key, spf])).toBe(key);
    expect(pickKeyRecord(['junk', 'more junk'])).toBe('junk');
    expect(pickKeyRecord([])).toBeNull();
    expect(pickKeyRecord({ error: 'nodata' })).toBeNull();
    expect(pickKeyRecord({ error: 'temp' })).toEqual({ error: 'temp' });
  });

  it('one record is returned as it is, even if it is no key (the verifier says why)', async () => {
    expect(await adapter().dkimKey('bad._domainkey.keys.test')).toBe('not a key');
  });

  it('NXDOMAIN and NODATA are "no key"', async () => {
    expect(await adapter().dkimKey('none._domainkey.keys.test')).toBeNull();
    expect(await adapter().dkimKey('h.test')).toBeNull();
  });
});

describe('petrel dkim keygen → DNS → dkimKey → sign and verify', () => {
  const message = Buffer.from('From: a@mail.example.test\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nHello.\r\n');

  it.each([
    ['rsa', 'rsa'],
    ['ed', 'ed25519'],
  ] as const)('selector %s (%s)', async (selector, keyType) => {
    expect(published.get(selector)?.every((s) => s.length <= 255)).toBe(true);
    const name = `${selector}._domainkey.example.test`;
    const answer = await adapter().dkimKey(name);
    expect(answer).toBe(published.get(selector)?.join(''));
    const parsed = parseKeyRecord(answer as string);
    expect(parsed.ok && parsed.key.keyType).toBe(keyType);

    const keys = await loadSigningKeys([{ domain: 'example.test', selector, keyFile: join(dir, 'dkim', `example.test.${selector}.key`) }]);
    const key = keyForDomain(keys, 'mail.example.test');
    if (key === null) throw new Error('no key for mail.example.test');
    const { fields, bodyOffset } = rawFields(message);
    const h = new BodyHasher('relaxed', 'sha256');
    h.push(message.subarray(bodyOffset));
    const field = signMessage(fields, h.end(), { domain: key.domain, selector: key.selector, privateKey: key.privateKey });
    const signed = Buffer.concat([Buffer.from(field, 'latin1'), message]);
    const s = rawFields(signed);
    const lookup = (n: string): KeyAnswer => (n === name ? answer : null);
    expect(verifyMessage(signed, s.fields, s.bodyOffset, lookup, { now: Math.floor(Date.now() / 1000) }).map((r) => r.result)).toEqual(['pass']);
    const tampered = Buffer.from(signed.toString('latin1').replace('Hello.', 'Hullo.'), 'latin1');
    expect(verifyMessage(tampered, s.fields, s.bodyOffset, lookup, { now: 0 }).map((r) => r.result)).toEqual(['fail']);
  });
});
