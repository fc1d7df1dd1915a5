/**
 * Outbound DKIM signing of an observed message (RFC 6376 §5): picks the key
 * by the From domain and returns the DKIM-Signature field to prepend to the
 * stored bytes. Pure apart from node:crypto signing; the clock is injected.
 *
 * The signing domain follows the Author Domain (RFC 6376 §5 leaves the choice
 * to the signer; RFC 7489 §3.1.1 makes DMARC pass only when d= aligns with
 * the From domain), so a message is signed only when its From field names
 * exactly one domain: with none or several, no d= can align with "the"
 * author, and a signature would only lend a reputation to an ambiguous
 * message (RFC 7489 §6.6.1).
 */
import { signMessage } from './dkim/sign';
import { keyForDomain, type SigningKey } from './dkim/keys';
import { MessageObserver, type ObservedMessage } from './message-observer';

export type SignOutcome = { readonly field: Buffer; readonly domain: string; readonly selector: string } | { readonly skip: string };

/**
 * The signature for `observed` (t= = `now`, Unix seconds; relaxed/relaxed,
 * sign.ts's header list with From over-signed), or why none was made.
 */
export function signObserved(observed: ObservedMessage, keys: readonly SigningKey[], now: number): SignOutcome {
  const domain = authorDomain(observed);
  if (typeof domain !== 'string') return domain;
  if (observed.signingBody === null) return { skip: 'the body was not hashed for signing' };
  const key = keyForDomain(keys, domain);
  if (key === null) return { skip: `no DKIM key for ${domain}` };
  try {
    const text = signMessage(observed.storedFields, observed.signingBody, {
      domain: key.domain,
      selector: key.selector,
      privateKey: key.privateKey,
      timestamp: now,
    });
    return { field: Buffer.from(text, 'latin1'), domain: key.domain, selector: key.selector };
  } catch (e) {
    // Only a key of an unsupported type gets here (a config error): send unsigned rather than not at all.
    return { skip: `signing with ${key.selector}._domainkey.${key.domain} failed: ${String(e)}` };
  }
}

function authorDomain(observed: ObservedMessage): string | { skip: string } {
  if (observed.fromFields === 0) return { skip: 'no From field' };
  if (observed.fromFields > 1) return { skip: `${observed.fromFields} From fields (RFC 5322 §3.6 allows one)` };
  const [first, ...rest] = observed.fromDomains;
  if (first === undefined) return { skip: 'no domain in the From field' };
  if (rest.length > 0) return { skip: `several From domains: ${observed.fromDomains.join(', ')}` };
  return first;
}

/** The signature for a whole message in hand (one made on this host, e.g. by `petrel sendmail`). */
export function signWhole(message: Buffer, keys: readonly SigningKey[], now: number): SignOutcome {
  if (keys.length === 0) return { skip: 'no DKIM keys configured' };
  const observer = new MessageObserver({ authservId: '', sign: true, verify: false });
  observer.push(message);
  observer.end();
  const observed = observer.observed;
  return observed ? signObserved(observed, keys, now) : { skip: 'header section too large' };
}
