/**
 * The arguments of MAIL and RCPT: the "FROM:" / "TO:" keyword, the path and
 * the ESMTP parameters (RFC 5321 §4.1.1.2, §4.1.1.3, §4.1.2 Mail-parameters,
 * Rcpt-parameters). MAIL knows SIZE (RFC 1870), BODY (RFC 6152) and SMTPUTF8
 * (RFC 6531); RCPT knows none (DSN's NOTIFY/ORCPT are not advertised).
 * Pure; never throws: every refusal is a Reply with an enhanced status code.
 *
 * Order of checks, so a client always learns about the first thing to fix:
 * keyword and brackets (501 5.5.4) → path (501 5.1.7 / 5.1.3) → parameter
 * syntax and duplicates (501 5.5.4) → unknown keywords (555 5.5.4) → values
 * (501 5.5.4) → SIZE limit (552 5.3.4) → non-ASCII without SMTPUTF8 (553 5.6.7).
 */

import { parsePath, type Path } from './path';
import { reply, type Reply } from './reply';

export interface MailArgs {
  readonly path: Path;
  readonly size?: number;
  readonly body?: '7BIT' | '8BITMIME';
  readonly smtputf8: boolean;
}

export interface RcptArgs {
  readonly path: Path;
}

export type ArgsParse<T> = { ok: true; value: T } | { ok: false; reply: Reply };

/** Upper-cased esmtp-keyword → esmtp-value (undefined when the parameter has no "=value"). */
type Params = ReadonlyMap<string, string | undefined>;

const MAIL_KEYWORDS: ReadonlySet<string> = new Set(['SIZE', 'BODY', 'SMTPUTF8']);
const RCPT_KEYWORDS: ReadonlySet<string> = new Set<string>();

/**
 * esmtp-param = esmtp-keyword ["=" esmtp-value]; esmtp-keyword = (ALPHA / DIGIT)
 * *(ALPHA / DIGIT / "-"); esmtp-value = 1*(%d33-60 / %d62-126), plus UTF-8 under
 * RFC 6531 §3.3 (C1 controls and lone surrogates are not characters we accept).
 */
const ESMTP_PARAM = /^([A-Za-z0-9][A-Za-z0-9-]*)(?:=([\x21-\x3c\x3e-\x7e\u00a0-\ud7ff\ue000-\u{10ffff}]+))?$/u;

/** RFC 1870 §3: size-value = 1*20DIGIT. */
const SIZE_VALUE = /^\d{1,20}$/;

/** `arg` is everything after the verb and its single space, e.g. "FROM:<a@b.example> SIZE=100 BODY=8BITMIME". */
export function parseMailArgs(arg: string, opts: { maxSize: number }): ArgsParse<MailArgs> {
  const after = afterKeyword(arg, 'FROM:');
  if (after === null) return refuse(501, '5.5.4', 'Syntax: MAIL FROM:<address> [parameters]');
  // SMTPUTF8 may come after the path, so parse with UTF-8 allowed and decide once the parameters are known.
  const p = parsePath(after, { smtputf8: true, allowNull: true, allowBarePostmaster: false });
  if (!p.ok) return refuse(501, '5.1.7', `Bad sender address syntax: ${p.reason}`);
  const params = parseParams(p.rest, MAIL_KEYWORDS);
  if (!params.ok) return params;
  return mailValues(p.path, params.value, opts.maxSize);
}

export function parseRcptArgs(arg: string, opts: { smtputf8: boolean }): ArgsParse<RcptArgs> {
  const after = afterKeyword(arg, 'TO:');
  if (after === null) return refuse(501, '5.5.4', 'Syntax: RCPT TO:<address>');
  // RFC 5321 §4.1.1.3: "<Postmaster>" with no domain must be accepted; "<>" is never a recipient.
  const p = parsePath(after, { smtputf8: true, allowNull: false, allowBarePostmaster: true });
  if (!p.ok) return refuse(501, '5.1.3', `Bad recipient address syntax: ${p.reason}`);
  const params = parseParams(p.rest, RCPT_KEYWORDS);
  if (!params.ok) return params;
  if (p.path.mailbox?.utf8 && !opts.smtputf8) return nonAsciiRefused();
  return { ok: true, value: { path: p.path } };
}

function refuse(code: number, enhanced: string, text: string): { ok: false; reply: Reply } {
  return { ok: false, reply: reply(code, enhanced, text) };
}

/** RFC 6531 §3.5: a UTF-8 address in a transaction that did not ask for SMTPUTF8. */
function nonAsciiRefused(): { ok: false; reply: Reply } {
  return refuse(553, '5.6.7', 'Non-ASCII addresses require SMTPUTF8');
}

/**
 * What follows "FROM:" / "TO:" (matched case-insensitively), or null. RFC 5321
 * allows no space after the colon, but many clients send one, so one is
 * skipped (cf. Postfix, chasquid). The path must keep its angle brackets.
 */
function afterKeyword(arg: string, keyword: string): string | null {
  if (arg.slice(0, keyword.length).toUpperCase() !== keyword) return null;
  let rest = arg.slice(keyword.length);
  if (rest.startsWith(' ')) rest = rest.slice(1);
  return rest.startsWith('<') ? rest : null;
}

/** Splits and checks the parameters after the path; single spaces separate them, runs of spaces are tolerated. */
function parseParams(rest: string, known: ReadonlySet<string>): ArgsParse<Params> {
  if (rest !== '' && !rest.startsWith(' ')) {
    return refuse(501, '5.5.4', 'A space must separate the address from its parameters');
  }
  const params = new Map<string, string | undefined>();
  for (const token of rest.split(' ')) {
    if (token === '') continue;
    const m = ESMTP_PARAM.exec(token);
    if (!m) return refuse(501, '5.5.4', 'Malformed parameter (RFC 5321 section 4.1.2 esmtp-param)');
    const keyword = (m[1] ?? '').toUpperCase();
    if (params.has(keyword)) return refuse(501, '5.5.4', `Duplicate parameter ${shown(keyword)}`);
    params.set(keyword, m[2]);
  }
  for (const keyword of params.keys()) {
    if (!known.has(keyword)) return refuse(555, '5.5.4', `Unsupported parameter ${shown(keyword)}`);
  }
  return { ok: true, value: params };
}

/** A keyword is [A-Za-z0-9-] already; only its length needs a bound before it goes into a reply. */
function shown(keyword: string): string {
  return keyword.length > 32 ? `${keyword.slice(0, 32)}...` : keyword;
}

function mailValues(path: Path, params: Params, maxSize: number): ArgsParse<MailArgs> {
  const size = sizeValue(params);
  if (typeof size === 'object') return size;
  const body = bodyValue(params);
  if (typeof body === 'object') return body;
  const smtputf8 = params.has('SMTPUTF8');
  if (smtputf8 && params.get('SMTPUTF8') !== undefined) {
    return refuse(501, '5.5.4', 'SMTPUTF8 takes no value (RFC 6531 section 3.4)');
  }
  if (size !== undefined && size > maxSize) {
    return refuse(552, '5.3.4', 'Message size exceeds fixed maximum message size');
  }
  if (path.mailbox?.utf8 && !smtputf8) return nonAsciiRefused();
  return { ok: true, value: { path, smtputf8, ...(size === undefined ? {} : { size }), ...(body ? { body } : {}) } };
}

/** SIZE=n (RFC 1870 §3): the declared message size in octets. */
function sizeValue(params: Params): number | undefined | { ok: false; reply: Reply } {
  if (!params.has('SIZE')) return undefined;
  const value = params.get('SIZE');
  if (value === undefined || !SIZE_VALUE.test(value)) {
    return refuse(501, '5.5.4', 'SIZE needs a number of octets, at most 20 digits (RFC 1870)');
  }
  return Number(value);
}

/** BODY=7BIT|8BITMIME (RFC 6152 §2); BINARYMIME (RFC 3030) is not advertised, so it is refused too. */
function bodyValue(params: Params): '7BIT' | '8BITMIME' | undefined | { ok: false; reply: Reply } {
  if (!params.has('BODY')) return undefined;
  const value = params.get('BODY')?.toUpperCase();
  if (value === '7BIT' || value === '8BITMIME') return value;
  return refuse(501, '5.5.4', 'BODY must be 7BIT or 8BITMIME (RFC 6152)');
}
