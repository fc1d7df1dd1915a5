/**
 * Authentication-Results rendering (RFC 8601 §2.2, §2.7; RFC 6008 header.b;
 * RFC 7489 §11.2 dmarc) and authserv-id extraction for removing forged
 * fields (RFC 8601 §5). fast-check feeds hostile strings into every slot and
 * checks that the output stays one well-folded header field.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { AuthResultsInput } from '../src/auth/auth-results';
import { authservIdOf, renderAuthResults } from '../src/auth/auth-results';

const render = (i: AuthResultsInput) => renderAuthResults(i).toString('latin1');
/** The field unfolded (RFC 5322 §2.2.3: remove the CRLF before WSP) without its trailing CRLF. */
const unfold = (field: string) => field.slice(0, -2).replace(/\r\n(?=[ \t])/g, '');
const NAME = 'Authentication-Results:';

describe('renderAuthResults', () => {
  it('the RFC 8601 §2.2 shape, one result per folded line', () => {
    const out = render({
      authservId: 'mx.petrel.example',
      spf: { result: 'pass', mailfrom: 'user@example.com' },
      dkim: [{ result: 'pass', domain: 'example.com', selector: 'sel', b: 'AbCdEfGhIjKlMnOp' }],
      dmarc: { result: 'pass', fromDomain: 'example.com' },
    });
    expect(out).toBe(
      'Authentication-Results: mx.petrel.example;\r\n' +
        '\tspf=pass smtp.mailfrom=user@example.com;\r\n' +
        '\tdkim=pass header.d=example.com header.s=sel header.b=AbCdEfGh;\r\n' +
        '\tdmarc=pass header.from=example.com\r\n',
    );
    expect(unfold(out)).toBe(
      `${NAME} mx.petrel.example;\tspf=pass smtp.mailfrom=user@example.com;\tdkim=pass header.d=example.com header.s=sel header.b=AbCdEfGh;\tdmarc=pass header.from=example.com`,
    );
  });

  it('no signatures → dkim=none; no spf or dmarc → left out', () => {
    expect(render({ authservId: 'mx', dkim: [] })).toBe('Authentication-Results: mx;\r\n\tdkim=none\r\n');
  });

  it('the null sender reports smtp.helo; an address literal HELO is quoted', () => {
    expect(render({ authservId: 'mx', spf: { result: 'pass', mailfrom: '', helo: 'out.example.net' }, dkim: [] })).toContain('spf=pass smtp.helo=out.example.net;');
    expect(render({ authservId: 'mx', spf: { result: 'none', helo: '[192.0.2.1]' }, dkim: [] })).toContain('smtp.helo="[192.0.2.1]"');
  });

  it('reason= only for results other than pass, quoted and escaped', () => {
    const out = render({
      authservId: 'mx',
      dkim: [
        { result: 'fail', domain: 'example.com', reason: 'body hash "bh" did not verify \\ sorry' },
        { result: 'pass', domain: 'example.org', reason: 'ignored' },
      ],
    });
    expect(unfold(out).replace(/\t/g, ' ')).toContain('dkim=fail reason="body hash \\"bh\\" did not verify \\\\ sorry" header.d=example.com;');
    expect(out).not.toContain('ignored');
  });

  it('reasons are bounded and printable ASCII', () => {
    const out = render({ authservId: 'mx', spf: { result: 'fail', mailfrom: 'a@example.com', reason: `é${'x'.repeat(500)}\u0000` }, dkim: [] });
    const reason = /reason="([^"]*)"/.exec(unfold(out))?.[1] ?? '';
    expect(reason.length).toBe(120);
    expect(reason.startsWith('?x')).toBe(true);
  });

  it('header.b is the first 8 characters of b= without FWS, quoted when not a token', () => {
    expect(render({ authservId: 'mx', dkim: [{ result: 'pass', domain: 'example.com', b: 'Ab Cd\r\n Ef' }] })).toContain('header.b=AbCdEf');
    expect(render({ authservId: 'mx', dkim: [{ result: 'pass', domain: 'example.com', b: 'Xq/4Vx0Y+abc' }] })).toContain('header.b="Xq/4Vx0Y"');
  });

  it('a local part that is not a dot-atom is a quoted-string; an odd address is quoted whole', () => {
    const spf = (mailfrom: string) => unfold(render({ authservId: 'mx', spf: { result: 'pass', mailfrom }, dkim: [] }));
    expect(spf('"john doe"@example.com')).toContain('smtp.mailfrom="\\"john doe\\""@example.com');
    expect(spf('a;b@example.com')).toContain('smtp.mailfrom="a;b"@example.com');
    expect(spf('user@localhost')).toContain('smtp.mailfrom="user@localhost"');
    expect(spf('user+tag@example.com')).toContain('smtp.mailfrom=user+tag@example.com');
  });

  it('international domains become A-labels', () => {
    const out = render({ authservId: 'mx', spf: { result: 'pass', mailfrom: 'a@bücher.example' }, dkim: [], dmarc: { result: 'none', fromDomain: 'bücher.example' } });
    expect(out).toContain('smtp.mailfrom=a@xn--bcher-kva.example');
    expect(out).toContain('header.from=xn--bcher-kva.example');
  });

  it('a hostile mailfrom cannot inject a header line', () => {
    const out = render({ authservId: 'mx', spf: { result: 'pass', mailfrom: 'x@example.com\r\nX-Injected: yes\r\n' }, dkim: [] });
    const lines = out.slice(0, -2).split('\r\n');
    expect(lines.slice(1).every((l) => l.startsWith('\t'))).toBe(true);
    expect(out).not.toMatch(/\r\nX-Injected/);
    expect(out.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
  });

  it('a result keyword outside the method registry is reported as permerror', () => {
    expect(render({ authservId: 'mx', dkim: [{ result: 'pass; spf=pass' }] })).toContain('dkim=permerror');
    expect(render({ authservId: 'mx', dkim: [], dmarc: { result: 'softfail', fromDomain: 'example.com' } })).toContain('dmarc=permerror');
  });

  it('the dmarc comment carries only a policy keyword', () => {
    expect(render({ authservId: 'mx', dkim: [], dmarc: { result: 'fail', fromDomain: 'example.com', policy: 'reject' } })).toContain('dmarc=fail (p=reject) header.from=example.com');
    expect(render({ authservId: 'mx', dkim: [], dmarc: { result: 'fail', fromDomain: 'example.com', policy: 'x) evil' } })).not.toContain('evil');
  });

  it('a long result folds between its properties, lines within 78', () => {
    const out = render({
      authservId: 'mx.example',
      dkim: [{ result: 'temperror', domain: 'a-rather-long-signing-domain.example.com', selector: 'selector-2024-rotation', b: 'QUJDREVGR0g=', reason: 'key query timed out' }],
    });
    const lines = out.slice(0, -2).split('\r\n');
    expect(lines.length).toBeGreaterThan(2);
    expect(lines.every((l) => l.length <= 78)).toBe(true);
  });
});

describe('authservIdOf', () => {
  it.each([
    ['mx.example.com; spf=pass', 'mx.example.com'],
    [' mx.example.com 1; none', 'mx.example.com'],
    ['\r\n\t(our (nested) comment) mx.example.com;spf=pass', 'mx.example.com'],
    ['"mx.example.com"; none', 'mx.example.com'],
    ['"a \\"b\\""; none', 'a "b"'],
    ['mx.example.com.evil.net; none', 'mx.example.com.evil.net'],
  ])('%j → %j', (value, id) => expect(authservIdOf(value)).toBe(id));

  it.each(['', '   ', '; spf=pass', '(unterminated mx.example.com', '"unterminated'])('%j → null', (value) => {
    expect(authservIdOf(value)).toBeNull();
  });
});

const hostile = fc.oneof(
  fc.string({ maxLength: 80 }),
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc.constantFrom('\r\nX-Evil: 1', '\n', '\r', '"', '\\', '(', ';', 'a@b\r\n.c', 'é@ü.example', ''),
);
const hostileInput: fc.Arbitrary<AuthResultsInput> = fc.record({
  authservId: hostile,
  spf: fc.option(fc.record({ result: hostile, mailfrom: hostile, helo: hostile, reason: hostile }), { nil: undefined }),
  dkim: fc.array(fc.record({ result: fc.oneof(hostile, fc.constantFrom('pass', 'fail')), domain: hostile, selector: hostile, b: hostile, reason: hostile }), { maxLength: 4 }),
  dmarc: fc.option(fc.record({ result: hostile, fromDomain: hostile, policy: fc.option(hostile) }), { nil: undefined }),
});

describe('properties', () => {
  it('one header field: CR and LF only as CRLF folds, continuations start with WSP, ASCII, bounded lines', () => {
    fc.assert(
      fc.property(hostileInput, (input) => {
        const buf = renderAuthResults(input);
        const text = buf.toString('latin1');
        expect(text.startsWith(`${NAME} `)).toBe(true);
        expect(text.endsWith('\r\n')).toBe(true);
        expect(text.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
        expect(buf.every((b) => b === 9 || (b >= 0x20 && b <= 0x7e) || b === 13 || b === 10)).toBe(true);
        const lines = text.slice(0, -2).split('\r\n');
        for (const l of lines.slice(1)) expect(l).toMatch(/^[ \t]\S/);
        for (const l of lines) expect(l.length).toBeLessThanOrEqual(998);
      }),
      { numRuns: 1000 },
    );
  });

  it('authservIdOf round-trips the rendered authserv-id', () => {
    const printable = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 100 });
    const host = fc.domain();
    fc.assert(
      fc.property(fc.oneof(host, printable), hostileInput, (id, input) => {
        const field = renderAuthResults({ ...input, authservId: id }).toString('latin1');
        return authservIdOf(field.slice(NAME.length, -2)) === id;
      }),
      { numRuns: 1000 },
    );
  });
});
