/**
 * `petrel resolve DOMAIN [--json]` (src/cli/resolve-cmd.ts) against a private
 * dnsmasq: the printed route and the exit status the delivery code would act
 * on (0 route, 1 permanent, 75 temporary, 64 usage).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveCommand } from '../../src/cli/resolve-cmd';
import { RESOLVER_TEST_ZONE, startDnsZone, type DnsZoneServer } from '../helpers/dnsmasq';

let zone: DnsZoneServer;

beforeAll(async () => {
  zone = await startDnsZone(RESOLVER_TEST_ZONE);
});

afterAll(async () => {
  await zone?.stop();
});

async function run(...args: string[]): Promise<{ status: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const status = await resolveCommand(args, [zone.server], (s) => void (out += s), (s) => void (err += s), { timeoutMs: 300, tries: 1 });
  return { status, out, err };
}

describe('petrel resolve', () => {
  it('prints the MX hosts in order with preference and addresses; exit 0', async () => {
    const r = await run('multi.test');
    expect(r.status).toBe(0);
    const lines = r.out.trimEnd().split('\n');
    expect(lines[0]).toContain('multi.test: MX hosts');
    expect(lines[1]).toMatch(/^\s+10\s+mx1\.multi\.test\s+::1 127\.0\.0\.2$/);
    expect(lines.slice(2).map((l) => l.trim().split(/\s+/).slice(0, 2).join(' ')).sort()).toEqual(['20 mx2.multi.test', '20 mx3.multi.test']);
    expect(r.err).toBe('');
  });

  it('--json gives the route as data', async () => {
    const r = await run('implicit.test', '--json');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.out)).toEqual({
      domain: 'implicit.test',
      kind: 'hosts',
      implicit: true,
      hosts: [{ name: 'implicit.test', preference: 0, addresses: ['127.0.0.5'] }],
    });
  });

  it('null MX: exit 1', async () => {
    const r = await run('nullmx.test');
    expect(r).toMatchObject({ status: 1, out: 'nullmx.test: null MX: domain accepts no mail (RFC 7505)\n' });
  });

  it('NXDOMAIN: exit 1', async () => {
    const r = await run('nope.test');
    expect(r.status).toBe(1);
    expect(r.out).toContain('no such domain');
  });

  it('--json for a failure carries the enhanced status code', async () => {
    const r = await run('--json', 'nullmx.test');
    expect(JSON.parse(r.out)).toMatchObject({ domain: 'nullmx.test', kind: 'null-mx', permanent: true, enhanced: '5.1.10' });
  });

  it('SERVFAIL: temporary failure, exit 75 (EX_TEMPFAIL)', async () => {
    const r = await run('servfail.test');
    expect(r.status).toBe(75);
    expect(r.out).toMatch(/^servfail\.test: temporary failure: .*ESERVFAIL/);
  });

  it('usage errors: exit 64 on stderr', async () => {
    expect(await run()).toMatchObject({ status: 64, out: '' });
    expect((await run('a.test', 'b.test')).status).toBe(64);
    expect((await run('--bogus')).status).toBe(64);
  });
});
