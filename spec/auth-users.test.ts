// The users file format and password hashes (src/policy/users.ts): parse and
// format round trips, file:line errors, scrypt (RFC 7914) verification, and
// who may use which MAIL FROM address.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatEntry, hashPassword, mayUseSender, normalizeAddress, parseUsers, verifyPassword, type UserEntry } from '../src/policy/users';

/** Tests only need the code path, not the strength: N = 2^4. */
const CHEAP = { ln: 4, r: 8, p: 1 };
const HASH = '$scrypt$ln=4,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U';

const address = fc.tuple(fc.stringMatching(/^[a-z0-9._+-]{1,12}$/), fc.constantFrom('example.com', 'localhost', 'b.test')).map(([l, d]) => `${l}@${d}`);

describe('users file format', () => {
  it('format then parse gives the same entries, names lowercased', () => {
    fc.assert(fc.property(fc.uniqueArray(address, { maxLength: 5 }), fc.array(address, { maxLength: 3 }), (names, senders) => {
      const entries: UserEntry[] = names.map((name, i) => ({ name, hash: HASH, senders: i % 2 ? senders : [] }));
      const text = ['# users', '', ...entries.map(formatEntry)].join('\n');
      expect([...parseUsers(text, 'users').values()]).toEqual(entries);
    }));
  });

  it('reads CRLF files and compares names without regard to case', () => {
    const users = parseUsers(`Alice@Example.COM:${HASH}:Sales@Example.com\r\n`, 'users');
    expect(users.get('alice@example.com')?.senders).toEqual(['sales@example.com']);
  });

  it.each([
    ['alice:' + HASH, 1, 'expected "address:hash"'],
    ['alice@example.com:secret', 1, 'not a $scrypt$ hash'],
    [`# c\nalice@example.com:${HASH}\nALICE@example.com:${HASH}`, 3, 'listed twice'],
    [`alice@example.com:${HASH}:bad sender`, 1, 'bad sender address'],
    [`alice@example.com:${HASH}:a@b.c:extra`, 1, 'too many ":" fields'],
    ['alice@example.com:$scrypt$ln=40,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U', 1, 'not a $scrypt$ hash'],
  ])('refuses %j at line %i', (text, line, reason) => {
    expect(() => parseUsers(text, '/etc/petrel/users')).toThrow(`/etc/petrel/users:${line}: `);
    expect(() => parseUsers(text, '/etc/petrel/users')).toThrow(reason);
  });

  it('normalizeAddress takes plain addresses only', () => {
    expect(normalizeAddress(' Bob@Example.org ')).toBe('bob@example.org');
    for (const bad of ['bob', 'bob@', '@x', 'a b@x', 'a:b@x', 'a,b@x', '"q"@x', 'a@b@c', '']) expect(normalizeAddress(bad), bad).toBeNull();
  });
});

describe('scrypt passwords (RFC 7914)', () => {
  it('verifies the right password and no other; every hash has its own salt', async () => {
    const h1 = await hashPassword('correct horse', CHEAP);
    const h2 = await hashPassword('correct horse', CHEAP);
    expect(h1).toMatch(/^\$scrypt\$ln=4,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    expect(h1).not.toBe(h2);
    expect(await verifyPassword('correct horse', h1)).toBe(true);
    expect(await verifyPassword('correct horse', h2)).toBe(true);
    expect(await verifyPassword('correct hors', h1)).toBe(false);
    expect(await verifyPassword('Correct horse', h1)).toBe(false);
    expect(await verifyPassword('', h1)).toBe(false);
  });

  it('any password verifies against its own hash only', async () => {
    await fc.assert(fc.asyncProperty(fc.string({ minLength: 1, maxLength: 20 }), fc.string({ minLength: 1, maxLength: 20 }), async (a, b) => {
      const h = await hashPassword(a, CHEAP);
      expect(await verifyPassword(b, h)).toBe(a.normalize('NFC') === b.normalize('NFC'));
    }), { numRuns: 30 });
  });

  it('a hash it cannot read verifies nothing', async () => {
    expect(await verifyPassword('x', 'x')).toBe(false);
    expect(await verifyPassword('x', '$scrypt$ln=4,r=8,p=1$$')).toBe(false);
  });
});

describe('MAIL FROM ownership', () => {
  const alice: UserEntry = { name: 'alice@example.com', hash: HASH, senders: ['sales@example.com'] };
  it.each([
    ['alice@example.com', true],
    ['ALICE@Example.COM', true],
    ['sales@example.com', true],
    ['', true],
    ['bob@example.com', false],
    ['alice@example.org', false],
    ['alice+tag@example.com', false],
  ])('%j: %s', (sender, ok) => {
    expect(mayUseSender(alice, sender)).toBe(ok);
  });
});
