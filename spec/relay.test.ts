// Relay control (RFC 5321 §3.6, §3.6.1, App. C): who may send us mail for which domain.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decideRecipient, hasSenderRouting, type RelayFacts, type RelayPolicy } from '../src/policy/relay';
import { parsePath, type DomainKind, type Mailbox, type Path } from '../src/smtp/path';

const policy: RelayPolicy = { localDomains: ['localhost', 'example.com', '[192.0.2.1]'], relayDomains: ['backup.example.net'] };

function kindOf(domain: string): DomainKind {
  if (domain === '') return 'none';
  if (/^\[ipv6:/i.test(domain)) return 'ipv6';
  return domain.startsWith('[') ? 'ipv4' : 'dns';
}

function path(local: string, domain: string, opts: { quoted?: boolean; route?: string[] } = {}): Path {
  const mailbox: Mailbox = { localPart: local, quoted: opts.quoted ?? false, domain, domainKind: kindOf(domain), utf8: false };
  return { mailbox, route: opts.route ?? [] };
}

const untrusted: RelayFacts = { trusted: false, authenticated: false };
const trusted: RelayFacts = { trusted: true, authenticated: false };
const authenticated: RelayFacts = { trusted: false, authenticated: true };
const clients = { untrusted, trusted, authenticated };

describe('decideRecipient: the relay table', () => {
  // [recipient domain, untrusted, trusted, authenticated]
  const table: [string, string, string, string][] = [
    ['localhost', 'local', 'local', 'local'],
    ['example.com', 'local', 'local', 'local'],
    ['EXAMPLE.Com', 'local', 'local', 'local'], // RFC 5321 §2.4: domains are case-insensitive
    ['example.com.', 'local', 'local', 'local'], // the root label's dot changes nothing
    ['backup.example.net', 'relay-domain', 'relay-domain', 'relay-domain'],
    ['Backup.Example.NET', 'relay-domain', 'relay-domain', 'relay-domain'],
    ['remote.example.org', 'denied', 'relay', 'relay'],
    ['sub.example.com', 'denied', 'relay', 'relay'], // no implicit subdomains
    ['[192.0.2.1]', 'local', 'local', 'local'], // a listed address literal
    ['[192.0.2.2]', 'denied', 'relay', 'relay'], // an unlisted one is remote
    ['[IPv6:2001:db8::1]', 'denied', 'relay', 'relay'],
  ];
  for (const [domain, ...expected] of table) {
    (['untrusted', 'trusted', 'authenticated'] as const).forEach((who, i) => {
      it(`user@${domain} from ${who} client → ${expected[i]}`, () => {
        const d = decideRecipient(path('user', domain), clients[who], policy);
        expect(d.ok ? d.route : 'denied').toBe(expected[i]);
        if (!d.ok) {
          expect(d.reply).toMatchObject({ code: 554, enhanced: '5.7.1', lines: ['Relay access denied'] });
        }
      });
    });
  }

  it('bare <Postmaster> is local for anyone (RFC 5321 §4.1.1.3)', () => {
    expect(decideRecipient(path('Postmaster', ''), untrusted, policy)).toEqual({ ok: true, route: 'local' });
    expect(decideRecipient(path('POSTMASTER', ''), untrusted, { localDomains: [], relayDomains: [] })).toEqual({ ok: true, route: 'local' });
  });

  it('a domainless recipient that is not postmaster, and the null path, are refused with 501', () => {
    const bare = decideRecipient(path('user', ''), trusted, policy);
    expect(bare.ok || bare.reply.code).toBe(501);
    const nul = decideRecipient({ mailbox: null, route: [] }, trusted, policy);
    expect(nul.ok || nul.reply.code).toBe(501);
  });

  it('with no local or relay domains, an untrusted client can reach nothing but postmaster', () => {
    const none: RelayPolicy = { localDomains: [], relayDomains: [] };
    expect(decideRecipient(path('user', 'localhost'), untrusted, none).ok).toBe(false);
  });
});

describe('sender-specified routing', () => {
  const tricks: [string, Path][] = [
    ['@a:user@localhost (source route)', path('user', 'localhost', { route: ['a'] })],
    ['@a,@b:user@localhost (source route)', path('user', 'localhost', { route: ['a', 'b'] })],
    ['user%remote@localhost (percent hack)', path('user%remote', 'localhost')],
    ['remote!user@localhost (bang path)', path('remote!user', 'localhost')],
    ['"user@remote"@localhost (quoted address)', path('user@remote', 'localhost', { quoted: true })],
    ['"user%remote"@localhost (quoted percent hack)', path('user%remote', 'localhost', { quoted: true })],
    ['user%remote@backup.example.net (relay domain)', path('user%remote', 'backup.example.net')],
  ];

  it.each(tricks)('%s from an untrusted client is refused with 554 5.7.1', (_name, p) => {
    expect(hasSenderRouting(p.mailbox!, p.route)).toBe(true);
    const d = decideRecipient(p, untrusted, policy);
    expect(d.ok).toBe(false);
    if (!d.ok) expect(d.reply).toMatchObject({ code: 554, enhanced: '5.7.1' });
  });

  it.each(tricks)('%s from a trusted or authenticated client is judged by its domain', (_name, p) => {
    const expected = p.mailbox!.domain === 'localhost' ? 'local' : 'relay-domain';
    expect(decideRecipient(p, trusted, policy)).toEqual({ ok: true, route: expected });
    expect(decideRecipient(p, authenticated, policy)).toEqual({ ok: true, route: expected });
  });

  it.each(['<@a:user@localhost>', '<@a,@b:user@localhost>', '<user%remote@localhost>', '<remote!user@localhost>', '<"user@remote"@localhost>'])(
    'RCPT TO:%s as parsed off the wire is refused from an untrusted client',
    (wire) => {
      const parsed = parsePath(wire, { smtputf8: false, allowNull: false, allowBarePostmaster: true });
      if (!parsed.ok) throw new Error(`path parser refused ${wire}: ${parsed.reason}`);
      const d = decideRecipient(parsed.path, untrusted, policy);
      expect(d.ok || d.reply.code).toBe(554);
      expect(decideRecipient(parsed.path, trusted, policy)).toEqual({ ok: true, route: 'local' });
    },
  );

  it('ordinary local parts are not routing', () => {
    expect(hasSenderRouting(path('first.last+tag', 'localhost').mailbox!, [])).toBe(false);
    expect(hasSenderRouting(path('with space', 'localhost', { quoted: true }).mailbox!, [])).toBe(false);
    // "@" unquoted can only be the domain separator; the parser never puts it in a dot-string.
    expect(hasSenderRouting(path('user', 'localhost').mailbox!, [])).toBe(false);
  });
});

describe('properties', () => {
  const local = fc.stringMatching(/^[a-z0-9.%!@+-]{1,20}$/);
  const domain = fc.constantFrom('localhost', 'example.com', 'backup.example.net', 'remote.example.org', '[192.0.2.9]');
  const facts = fc.record({ trusted: fc.boolean(), authenticated: fc.boolean() });
  const route = fc.array(fc.constantFrom('a.example', 'b.example'), { maxLength: 2 });

  it('an untrusted, unauthenticated client is never granted route "relay"', () => {
    fc.assert(
      fc.property(local, fc.boolean(), domain, route, (l, quoted, d, r) => {
        const decision = decideRecipient(path(l, d, { quoted, route: r }), untrusted, policy);
        expect(decision.ok && decision.route === 'relay').toBe(false);
      }),
    );
  });

  it('every refusal is a 5xx with an enhanced code of the same class', () => {
    fc.assert(
      fc.property(local, fc.boolean(), domain, route, facts, (l, quoted, d, r, f) => {
        const decision = decideRecipient(path(l, d, { quoted, route: r }), f, policy);
        if (decision.ok) return;
        expect(decision.reply.code).toBeGreaterThanOrEqual(500);
        expect(decision.reply.enhanced?.[0]).toBe('5');
        expect(decision.reason.length).toBeGreaterThan(0);
      }),
    );
  });

  it('trust or authentication never turns an acceptance into a refusal', () => {
    fc.assert(
      fc.property(local, fc.boolean(), domain, route, facts, (l, quoted, d, r, f) => {
        const p = path(l, d, { quoted, route: r });
        if (decideRecipient(p, untrusted, policy).ok) expect(decideRecipient(p, f, policy).ok).toBe(true);
      }),
    );
  });
});
