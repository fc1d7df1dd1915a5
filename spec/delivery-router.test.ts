// The delivery router and outcome mapping, pure: which next hop each recipient
// goes to (RFC 5321 §5.1, relay_host, local_domains), how a reply or a failed
// route becomes a queue record (RFC 5321 §4.2.1, §4.5.4.1; RFC 7505), when a
// message is finished and when it owes a DSN (RFC 3464; never to <>).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isFinished, needsBounce, outcomeFor, parseReplyText, routeReply, statusOf } from '../src/delivery/outcome';
import { destinationKey, domainOf, route, type RouterConfig } from '../src/delivery/router';
import { oneLine } from '../src/smtp/client-session';
import { reply } from '../src/smtp/reply';

const MX: RouterConfig = { localDomains: ['localhost', 'petrel.test'], relayHost: null };
const RELAY: RouterConfig = { ...MX, relayHost: { host: 'smart.example', port: 587, mx: false } };

const label = fc.stringMatching(/^[a-z][a-z0-9]{0,5}$/);
const domain = fc.oneof(
  fc.constantFrom('localhost', 'petrel.test', 'Example.COM', 'example.com', 'other.example'),
  fc.tuple(label, label).map(([a, b]) => `${a}.${b}`),
);
const address = fc.tuple(label, domain).map(([l, d]) => `${l}@${d}`);

describe('router (RFC 5321 §5.1)', () => {
  it('every due recipient is in exactly one place: a group or the local list (property)', () => {
    fc.assert(
      fc.property(fc.array(address, { maxLength: 12 }), fc.boolean(), (rcpts, relay) => {
        const indices = rcpts.map((_, i) => i);
        const r = route(rcpts, indices, relay ? RELAY : MX);
        const seen = [...r.local, ...r.groups.flatMap((g) => g.indices)].sort((a, b) => a - b);
        expect(seen).toEqual(indices);
        for (const i of r.local) expect(MX.localDomains).toContain(domainOf(rcpts[i] as string));
        if (relay) expect(r.groups.length).toBeLessThanOrEqual(1);
        // one group per domain, case-insensitively (RFC 5321 §2.4)
        for (const g of r.groups) {
          if (!relay) for (const i of g.indices) expect(domainOf(rcpts[i] as string)).toBe(g.key);
        }
        expect(new Set(r.groups.map((g) => g.key)).size).toBe(r.groups.length);
      }),
    );
  });

  it('groups by domain, case-insensitively, keeping recipient order', () => {
    const r = route(['a@Example.COM', 'b@other.example', 'c@example.com', 'd@localhost'], [0, 1, 2, 3], MX);
    expect(r.local).toEqual([3]);
    expect(r.groups.map((g) => [g.key, g.indices])).toEqual([
      ['example.com', [0, 2]],
      ['other.example', [1]],
    ]);
  });

  it('only the indices asked for are routed (already delivered ones are not)', () => {
    const r = route(['a@x.example', 'b@x.example', 'c@y.example'], [1, 2], MX);
    expect(r.groups.flatMap((g) => g.indices)).toEqual([1, 2]);
  });

  it('relay_host sends every non-local recipient to the smart host; brackets mean no MX lookup', () => {
    const r = route(['a@x.example', 'b@y.example', 'c@petrel.test'], [0, 1, 2], RELAY);
    expect(r.groups).toEqual([{ key: 'relay:[smart.example]:587', nextHop: { kind: 'relay', host: 'smart.example', port: 587, mx: false }, indices: [0, 1] }]);
    expect(r.local).toEqual([2]);
    expect(destinationKey({ kind: 'relay', host: 'smart.example', port: 25, mx: true })).toBe('relay:smart.example:25');
  });

  it('domainOf: the part after the last @, lowercased, trailing dot dropped; none → empty', () => {
    expect(domainOf('"a@b"@Example.Org.')).toBe('example.org');
    expect(domainOf('postmaster')).toBe('');
  });
});

const policy = { schedule: [10, 60, 300], maxLifetime: 3600 };
const T0 = 1_700_000_000_000;

describe('outcome mapping (RFC 5321 §4.2.1, §4.5.4.1)', () => {
  const ctx = (nowMs: number, attemptsBefore = 0) => ({ policy, arrivedMs: T0, attemptsBefore, nowMs, jitter: 0.5 });

  it('2xx delivered, 5xx failed, 4xx deferred to the schedule; the reply is kept as one line', () => {
    expect(outcomeFor(reply(250, '2.0.0', 'Ok: queued as X'), ctx(T0))).toEqual({ kind: 'delivered', reply: '250 2.0.0 Ok: queued as X' });
    expect(outcomeFor(reply(550, '5.1.1', 'no such user'), ctx(T0))).toEqual({ kind: 'failed', reply: '550 5.1.1 no such user' });
    expect(outcomeFor(reply(451, '4.7.1', 'greylisted'), ctx(T0))).toEqual({ kind: 'deferred', reply: '451 4.7.1 greylisted', nextAt: T0 + 10_000 });
    expect(outcomeFor(reply(421, undefined, 'bye'), ctx(T0 + 1000, 1))).toMatchObject({ kind: 'deferred', nextAt: T0 + 1000 + 60_000 });
  });

  it('a 4xx past the maximum queue lifetime fails (expired), keeping the last reply', () => {
    expect(outcomeFor(reply(451, '4.4.1', 'down'), ctx(T0 + 3600_000, 5))).toEqual({ kind: 'failed', reply: '451 4.4.1 down' });
  });

  it('any reply code maps by its class; deferrals land after now and never past the lifetime (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 200, max: 599 }), fc.integer({ min: 0, max: 4000_000 }), fc.nat(20), fc.double({ min: 0, max: 1, noNaN: true }), (code, elapsed, before, jitter) => {
        const now = T0 + elapsed;
        const o = outcomeFor(reply(code, undefined, 'x'), { policy, arrivedMs: T0, attemptsBefore: before, nowMs: now, jitter });
        const klass = Math.floor(code / 100);
        if (klass === 2) expect(o.kind).toBe('delivered');
        else if (klass === 5) expect(o.kind).toBe('failed');
        else if (o.kind === 'deferred') {
          expect(o.nextAt).toBeGreaterThan(now);
          expect(o.nextAt).toBeLessThanOrEqual(T0 + policy.maxLifetime * 1000);
        } else expect(o.kind).toBe('failed');
        expect(statusOf(o)).toBe({ delivered: 'sent', deferred: 'deferred', failed: 'bounced' }[o.kind]);
      }),
    );
  });

  it('failed routes: null MX 556 5.1.10 (RFC 7505 §4.2), NXDOMAIN 550 5.1.2, DNS trouble 451 4.4.3; hosts need no reply', () => {
    expect(routeReply({ kind: 'null-mx' })).toMatchObject({ code: 556, enhanced: '5.1.10' });
    expect(routeReply({ kind: 'no-such-domain' })).toMatchObject({ code: 550, enhanced: '5.1.2' });
    expect(routeReply({ kind: 'unroutable', enhanced: '5.4.4', reason: 'no address' })).toMatchObject({ code: 550, enhanced: '5.4.4' });
    expect(routeReply({ kind: 'temporary', reason: 'SERVFAIL' })).toMatchObject({ code: 451, enhanced: '4.4.3' });
    expect(routeReply({ kind: 'hosts', hosts: [], implicit: false })).toBeNull();
  });

  it('parseReplyText reads back what oneLine wrote, multi-line replies included (property)', () => {
    const enhanced = fc.option(fc.tuple(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 0, max: 99 })), { nil: undefined });
    fc.assert(
      fc.property(fc.integer({ min: 200, max: 599 }), enhanced, fc.array(fc.stringMatching(/^[ -~]{0,20}$/), { minLength: 1, maxLength: 3 }), (code, e, lines) => {
        const enh = e && code >= 400 ? `${Math.floor(code / 100)}.${e[0]}.${e[1]}` : undefined;
        const parsed = parseReplyText(oneLine(reply(code, enh, ...lines)));
        expect(parsed.code).toBe(code);
        expect(parsed.enhanced).toBe(enh);
      }),
    );
  });
});

describe('finishing and bouncing (RFC 3464)', () => {
  const state = fc.constantFrom('queued', 'deferred', 'delivered', 'failed') as fc.Arbitrary<'queued' | 'deferred' | 'delivered' | 'failed'>;

  it('finished exactly when no recipient is queued or deferred; a DSN exactly when one failed and the sender is not <> (property)', () => {
    fc.assert(
      fc.property(fc.array(state, { minLength: 1, maxLength: 8 }), fc.constantFrom('', 'a@example.com'), (states, sender) => {
        expect(isFinished(states)).toBe(!states.some((s) => s === 'queued' || s === 'deferred'));
        expect(needsBounce(sender, states)).toBe(sender !== '' && states.includes('failed'));
      }),
    );
  });

  it('a bounce (null sender) is never bounced', () => {
    expect(needsBounce('', ['failed', 'failed'])).toBe(false);
    expect(needsBounce('a@b.example', ['delivered', 'failed'])).toBe(true);
    expect(needsBounce('a@b.example', ['delivered', 'delivered'])).toBe(false);
  });
});
