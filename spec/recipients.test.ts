// Who exists in a local domain and where their mail goes (policy/recipients.ts): users, aliases, postmaster
// (RFC 5321 §4.5.1), plus-addressing, catch-all, and the RCPT-time verdicts (550 5.1.1, 550 5.4.6).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseAliases } from '../src/policy/aliases';
import { baseUser, resolveRecipient, verifyRecipient, type Destination, type Directory } from '../src/policy/recipients';

const ALIASES = `
root: alice
abuse@b.example: carol
team: alice, bob, friend@remote.example
fwd: someone@remote.example
loop1: loop2
loop2: loop1
keep: \\keep, keep@remote.example
dangling: nobody
`;

function directory(over: Partial<Directory> = {}): Directory {
  const users = new Set(['alice@a.example', 'bob@a.example', 'carol@b.example', 'alice@b.example']);
  return {
    localDomains: ['a.example', 'b.example', 'c.example'],
    users: { has: (a) => users.has(a) },
    aliases: parseAliases(ALIASES).table,
    catchAll: new Map([['c.example', 'inbox']]),
    delimiters: '+',
    ...over,
  };
}

const mbx = (user: string, domain: string): Destination => ({ kind: 'mailbox', mailbox: { user, domain } });
const fwd = (address: string): Destination => ({ kind: 'forward', address });

describe('resolveRecipient', () => {
  const dir = directory();
  const table: [string, ReturnType<typeof resolveRecipient>][] = [
    ['alice@a.example', { kind: 'ok', finals: [mbx('alice', 'a.example')] }],
    ['ALICE@A.Example', { kind: 'ok', finals: [mbx('alice', 'a.example')] }], // case-insensitive lookups
    ['alice+lists@a.example', { kind: 'ok', finals: [mbx('alice', 'a.example')] }], // plus-addressing
    ['alice+@a.example', { kind: 'ok', finals: [mbx('alice', 'a.example')] }],
    ['+alice@a.example', { kind: 'unknown' }], // nothing before the delimiter
    ['nobody@a.example', { kind: 'unknown' }],
    ['root@a.example', { kind: 'ok', finals: [mbx('alice', 'a.example')] }], // a bare alias name qualifies with the domain used
    ['root@b.example', { kind: 'ok', finals: [mbx('alice', 'b.example')] }],
    ['abuse@b.example', { kind: 'ok', finals: [mbx('carol', 'b.example')] }], // alias for one domain only
    ['abuse@a.example', { kind: 'unknown' }],
    ['team@a.example', { kind: 'ok', finals: [mbx('alice', 'a.example'), mbx('bob', 'a.example'), fwd('friend@remote.example')] }],
    ['team+x@a.example', { kind: 'ok', finals: [mbx('alice', 'a.example'), mbx('bob', 'a.example'), fwd('friend@remote.example')] }],
    ['loop1@a.example', { kind: 'loop', chain: ['loop1@a.example', 'loop2@a.example', 'loop1@a.example'] }],
    ['keep@a.example', { kind: 'ok', finals: [mbx('keep', 'a.example'), fwd('keep@remote.example')] }], // \name: the mailbox
    ['dangling@a.example', { kind: 'ok', finals: [fwd('nobody@a.example')] }], // its own recipient: fails later with a DSN
    ['postmaster@a.example', { kind: 'ok', finals: [mbx('postmaster', 'a.example')] }], // RFC 5321 §4.5.1
    ['PostMaster@b.example', { kind: 'ok', finals: [mbx('postmaster', 'b.example')] }],
    ['random@c.example', { kind: 'ok', finals: [mbx('inbox', 'c.example')] }], // catch-all
    ['root@c.example', { kind: 'ok', finals: [mbx('inbox', 'c.example')] }], // root → alice@c (unknown) → catch-all
    ['someone@remote.example', { kind: 'ok', finals: [fwd('someone@remote.example')] }],
  ];
  for (const [address, expected] of table) {
    it(`${address} → ${JSON.stringify(expected)}`, () => {
      expect(resolveRecipient(address, dir)).toEqual(expected);
    });
  }

  it('an alias for postmaster wins over the postmaster mailbox', () => {
    const d = directory({ aliases: parseAliases('postmaster: bob').table });
    expect(resolveRecipient('postmaster@a.example', d)).toEqual({ kind: 'ok', finals: [mbx('bob', 'a.example')] });
  });

  it('an exact user with the delimiter in its name wins over plus-addressing', () => {
    const d = directory({ users: { has: (a) => a === 'a+b@a.example' || a === 'a@a.example' } });
    expect(resolveRecipient('a+b@a.example', d)).toEqual({ kind: 'ok', finals: [mbx('a+b', 'a.example')] });
  });

  it('recipient_delimiter: any of several characters, or none at all', () => {
    expect(resolveRecipient('alice-x@a.example', directory({ delimiters: '+-' }))).toEqual({ kind: 'ok', finals: [mbx('alice', 'a.example')] });
    expect(resolveRecipient('alice+x@a.example', directory({ delimiters: '' }))).toEqual({ kind: 'unknown' });
    expect(baseUser('a-b+c', '+-')).toBe('a');
    expect(baseUser('abc', '+')).toBeNull();
  });

  it('a catch-all pointing at an alias expands it', () => {
    const d = directory({ catchAll: new Map([['a.example', 'team']]) });
    expect(resolveRecipient('zed@a.example', d)).toEqual({ kind: 'ok', finals: [mbx('alice', 'a.example'), mbx('bob', 'a.example'), fwd('friend@remote.example')] });
  });
});

describe('verifyRecipient (RCPT time)', () => {
  const dir = directory();
  it('unknown user → 550 5.1.1; loop → 550 5.4.6; known → accepted', () => {
    expect(verifyRecipient('nobody@a.example', dir)).toMatchObject({ code: 550, enhanced: '5.1.1' });
    expect(verifyRecipient('loop2@a.example', dir)).toMatchObject({ code: 550, enhanced: '5.4.6' });
    expect(verifyRecipient('bob+tag@a.example', dir)).toBeNull();
    expect(verifyRecipient('postmaster@c.example', dir)).toBeNull();
  });

  it('postmaster@ every local domain is accepted, whatever the users, aliases and catch-alls', () => {
    fc.assert(fc.property(
      fc.constantFrom('a.example', 'b.example', 'c.example'),
      fc.constantFrom('postmaster', 'POSTMASTER', 'PostMaster'),
      fc.boolean(),
      (domain, pm, noCatchAll) => {
        const d = directory({ users: { has: () => false }, aliases: new Map(), catchAll: noCatchAll ? new Map() : new Map([[domain, 'x']]) });
        expect(verifyRecipient(`${pm}@${domain}`, d)).toBeNull();
      },
    ));
  });

  it('with no users, aliases or catch-all, every other local part is unknown (no backscatter)', () => {
    const d = directory({ users: { has: () => false }, aliases: new Map(), catchAll: new Map() });
    fc.assert(fc.property(fc.stringMatching(/^[a-z0-9._+-]{1,20}$/), (local) => {
      fc.pre(local.toLowerCase() !== 'postmaster' && !/^postmaster\+/.test(local));
      expect(verifyRecipient(`${local}@a.example`, d)).toMatchObject({ code: 550, enhanced: '5.1.1' });
    }));
  });

  it('every accepted address resolves to at least one destination', () => {
    fc.assert(fc.property(fc.constantFrom('alice', 'bob', 'root', 'team', 'keep', 'x', 'fwd', 'dangling'), fc.constantFrom('', '+t'), fc.constantFrom('a.example', 'b.example', 'c.example'), (u, tag, d) => {
      const a = `${u}${tag}@${d}`;
      const r = resolveRecipient(a, dir);
      if (verifyRecipient(a, dir) === null) expect(r.kind === 'ok' && r.finals.length > 0).toBe(true);
    }));
  });
});
