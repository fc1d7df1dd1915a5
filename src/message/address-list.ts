/**
 * RFC 5322 address lists: mailboxes, name-addrs, groups (flattened), with
 * the obsolete syntax of §4.4 and comments anywhere. Pure; never throws.
 *
 *   address-list = address *("," address) / obs-addr-list   (§3.4, §4.4: empty elements)
 *   address   = mailbox / group          group = display-name ":" [group-list] ";"
 *   mailbox   = name-addr / addr-spec    name-addr = [display-name] angle-addr
 *   angle-addr = "<" addr-spec ">" / obs-angle-addr (a source route, dropped)
 *   addr-spec = local-part "@" domain   (§3.4.1; obs-local-part and obs-domain:
 *               words and atoms with CFWS around the dots, §4.4)
 *   display-name = phrase / obs-phrase ("." allowed), RFC 2047 words decoded
 *
 * The domain of an addr-spec also has to be a host name where it is written
 * as atoms: no label starts or ends with "-" (§3.4.1 defers to RFC 1034 /
 * RFC 5321 for the domain's syntax). UTF-8 is allowed in atoms, quoted
 * strings and comments (RFC 6532 §3.2), not in domain literals, which are
 * RFC 5321 address literals (ASCII), nor after a backslash, which exists to
 * escape ASCII specials. These choices make `isAddrSpec` agree with every
 * is_email case of the corpus (spec/message-addresses.test.ts).
 *
 * Encoded words inside a quoted display name are decoded too (RFC 2047 §5
 * forbids writing them there, but mailers do, and readers decode them).
 * Lenient where mail in the wild needs it, always with a defect: an address
 * without a domain ("From: Whomever"), an empty "<>", junk in a display name.
 * An address that cannot be read is skipped up to the next comma.
 */
import type { DefectList } from './header';
import { decodePieces, decodeUnstructured, type Piece } from './encoded-word';

export interface Mailbox {
  /** The display name, decoded; null when there is none. */
  readonly name: string | null;
  /** local-part@domain without comments or folding; quotes only where the local part needs them. */
  readonly address: string;
}

class Fail extends Error {}

/** True if `s` is exactly one RFC 5322 addr-spec (obsolete forms and CFWS included). */
export function isAddrSpec(s: string): boolean {
  const toks = lex(s);
  if (toks.some((t) => t.bad !== null)) return false;
  const p = new Parser(toks, null, '');
  try {
    p.addrSpec(true, false);
    return p.peek().kind === 'end';
  } catch (e) {
    if (e instanceof Fail) return false;
    throw e;
  }
}

/** The mailboxes of an address-list field body, groups flattened. */
export function parseAddressList(value: string, defects: DefectList, field?: string): Mailbox[] {
  const p = new Parser(lex(value), defects, field);
  return p.list();
}

/** RFC 5322 §3.6.4 msg-id (with the obs-id-left / obs-id-right of §4.5.4): "<left@right>", or null. */
export function parseMsgId(value: string): string | null {
  const toks = lex(value);
  if (toks.some((t) => t.bad !== null)) return null;
  const p = new Parser(toks, null, '');
  try {
    p.expect('<');
    const id = p.addrSpec(false, false);
    p.expect('>');
    return p.peek().kind === 'end' ? `<${id}>` : null;
  } catch (e) {
    if (e instanceof Fail) return null;
    throw e;
  }
}

const DOT_ATOM = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\u{10ffff}]+(\.[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\u{10ffff}]+)*$/u;

class Parser {
  private i = 0;

  constructor(
    private readonly toks: readonly Tok[],
    private readonly defects: DefectList | null,
    private readonly field: string | undefined,
  ) {}

  peek(ahead = 0): Tok {
    return this.toks[Math.min(this.i + ahead, this.toks.length - 1)] as Tok;
  }

  private next(): Tok {
    const t = this.peek();
    if (t.kind !== 'end') this.i++;
    return t;
  }

  private isSpecial(ch: string, t: Tok = this.peek()): boolean {
    return t.kind === 'special' && t.text === ch;
  }

  expect(ch: string): void {
    if (!this.isSpecial(ch)) throw new Fail(`expected "${ch}"`);
    this.i++;
  }

  private defect(code: string, detail: string): void {
    this.defects?.add(code, detail, this.field);
  }

  list(): Mailbox[] {
    const out: Mailbox[] = [];
    while (this.peek().kind !== 'end') {
      if (this.isSpecial(',')) {
        this.i++; // obs-addr-list: empty elements
        continue;
      }
      this.guarded(() => out.push(...this.address()), false);
      if (this.peek().kind !== 'end' && !this.isSpecial(',')) this.skipBad('text after an address', false);
    }
    return out;
  }

  /** Runs one address; on failure reports it and skips to the next separator. */
  private guarded(f: () => void, inGroup: boolean): void {
    const from = this.i;
    try {
      f();
    } catch (e) {
      if (!(e instanceof Fail)) throw e;
      this.i = from;
      this.skipBad(e.message, inGroup);
    }
  }

  private skipBad(why: string, inGroup: boolean): void {
    const from = this.i;
    while (this.peek().kind !== 'end' && !this.isSpecial(',') && !(inGroup && this.isSpecial(';'))) this.i++;
    const text = this.toks.slice(from, this.i).map((t) => t.raw).join('').trim();
    this.defect('invalid-address', `${why}: ${JSON.stringify(text.slice(0, 200))}`);
  }

  /** Looks past phrase words for what decides the form: ":" group, "<" name-addr, else addr-spec. */
  private lookahead(): string {
    for (let k = this.i; k < this.toks.length; k++) {
      const t = this.toks[k] as Tok;
      if (t.kind === 'end') return 'end';
      if (t.kind === 'special' && ':<@,;'.includes(t.text)) return t.text;
    }
    return 'end';
  }

  private address(): Mailbox[] {
    if (this.lookahead() === ':') return this.group();
    return [this.mailbox()];
  }

  private group(): Mailbox[] {
    this.phrase();
    this.expect(':');
    const out: Mailbox[] = [];
    while (this.peek().kind !== 'end' && !this.isSpecial(';')) {
      if (this.isSpecial(',')) {
        this.i++;
        continue;
      }
      this.guarded(() => out.push(this.mailbox()), true);
      if (this.peek().kind !== 'end' && !this.isSpecial(',') && !this.isSpecial(';')) this.skipBad('text after an address', true);
    }
    if (this.isSpecial(';')) this.i++;
    else this.defect('unterminated-group', 'a group without its closing ";"');
    return out;
  }

  /** A "<" before the next separator makes a name-addr, even after a display name that is not a phrase. */
  private angleAhead(): boolean {
    for (let k = this.i; k < this.toks.length; k++) {
      const t = this.toks[k] as Tok;
      if (t.kind === 'end' || (t.kind === 'special' && ',;'.includes(t.text))) return false;
      if (t.kind === 'special' && t.text === '<') return true;
    }
    return false;
  }

  private mailbox(): Mailbox {
    const form = this.lookahead();
    if (form === '<' || (form === '@' && this.angleAhead())) {
      const name = this.phrase();
      return { name, address: this.angleAddr() };
    }
    if (form === ':') throw new Fail('a group inside a group');
    return { name: null, address: this.addrSpec(true, true) };
  }

  private angleAddr(): string {
    this.expect('<');
    if (this.isSpecial('@')) this.route();
    if (this.isSpecial('>')) {
      this.i++;
      this.defect('empty-address', 'an empty "<>" address');
      return '';
    }
    const addr = this.addrSpec(true, true);
    this.expect('>');
    return addr;
  }

  /** §4.4 obs-route: "@a.example,@b.example:" — parsed and ignored (RFC 5321 Appendix C). */
  private route(): void {
    while (this.isSpecial('@') || this.isSpecial(',')) {
      if (this.next().text === '@') this.domain(false);
    }
    this.expect(':');
  }

  /** Returns "local@domain" in its plain form; `bare` allows a lone local part (with a defect). */
  addrSpec(hostname: boolean, bare: boolean): string {
    const local = this.localPart();
    const t = this.peek();
    if (bare && (t.kind === 'end' || (t.kind === 'special' && ',;>'.includes(t.text)))) {
      this.defect('address-without-domain', `"${local}" has no "@domain"`);
      return local;
    }
    this.expect('@');
    return `${local}@${this.domain(hostname)}`;
  }

  private localPart(): string {
    const words = [this.word()];
    let quoted = words[0]?.kind === 'qs';
    while (this.isSpecial('.')) {
      this.i++;
      const w = this.word();
      quoted ||= w.kind === 'qs';
      words.push(w);
    }
    const text = words.map((w) => w.text).join('.');
    return !quoted || DOT_ATOM.test(text) ? text : `"${text.replace(/(["\\])/g, '\\$1')}"`;
  }

  private word(): Tok {
    const t = this.peek();
    if (t.kind !== 'atom' && t.kind !== 'qs') throw new Fail('expected a word');
    if (t.bad !== null) throw new Fail(t.bad);
    this.i++;
    return t;
  }

  private domain(hostname: boolean): string {
    const t = this.peek();
    if (t.kind === 'lit') {
      if (t.bad !== null) throw new Fail(t.bad);
      this.i++;
      return `[${t.text}]`;
    }
    const labels = [this.label(hostname)];
    while (this.isSpecial('.')) {
      this.i++;
      labels.push(this.label(hostname));
    }
    return labels.join('.');
  }

  private label(hostname: boolean): string {
    const t = this.next();
    if (t.kind !== 'atom' || t.bad !== null) throw new Fail(t.bad ?? 'expected a domain label');
    if (hostname && (t.text.startsWith('-') || t.text.endsWith('-'))) throw new Fail('a domain label starts or ends with "-"');
    return t.text;
  }

  /** A display name: words and "." (obs-phrase), RFC 2047 decoded; null if there are none. */
  private phrase(): string | null {
    const pieces: Piece[] = [];
    let junk = false;
    while (this.peek().kind !== 'end' && !this.isSpecial('<') && !this.isSpecial(':')) {
      const t = this.next();
      const ws = pieces.length > 0 && t.ws ? ' ' : '';
      if (t.bad !== null || t.kind === 'lit' || t.kind === 'junk' || (t.kind === 'special' && t.text !== '.')) junk = true;
      if (t.kind === 'qs') pieces.push({ ws, text: decodeUnstructured(t.text, this.defects ?? nullDefects, this.field), encodable: false });
      else pieces.push({ ws, text: t.kind === 'lit' ? `[${t.text}]` : t.text, encodable: t.kind === 'atom' });
    }
    if (junk) this.defect('invalid-display-name', 'characters a display name may not hold (RFC 5322 §3.2.5)');
    if (pieces.length === 0) return null;
    return decodePieces(pieces, this.defects ?? nullDefects, this.field);
  }
}

/** Where defects are not wanted (the strict checks). */
const nullDefects = { add: () => undefined } as unknown as DefectList;

// ---------------------------------------------------------------------------
// The lexer: RFC 5322 §3.2 tokens, with CFWS (§3.2.2) folded into a flag on
// the token that follows it. A token that breaks the grammar carries `bad`.

type TokKind = 'atom' | 'qs' | 'lit' | 'special' | 'junk' | 'end';

interface Tok {
  readonly kind: TokKind;
  /** atom: as written; qs: content with quoted-pairs resolved and folds removed; lit: between the brackets. */
  readonly text: string;
  readonly raw: string;
  /** CFWS came before it. */
  readonly ws: boolean;
  readonly bad: string | null;
}

const SPECIALS = '.@<>:;,';
/** RFC 5322 §3.2.3 atext (ASCII part). */
const ATEXT = /[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]/;

/** §4.1 obs-NO-WS-CTL: %d1-8 / %d11 / %d12 / %d14-31 / %d127. */
function isObsCtl(c: number): boolean {
  return (c >= 1 && c <= 8) || c === 11 || c === 12 || (c >= 14 && c <= 31) || c === 127;
}

function isSurrogate(c: number): boolean {
  return c >= 0xd800 && c <= 0xdfff;
}

/** RFC 6532 §3.2 UTF8-non-ascii, less the C1 controls (RFC 5198 §2 excludes them from text as C0 ones are). */
function isUtf8Text(c: number): boolean {
  return c >= 0xa0 && !isSurrogate(c);
}

export function lex(s: string): Tok[] {
  const l = new Lexer(s);
  const toks: Tok[] = [];
  for (;;) {
    const t = l.token();
    toks.push(t);
    if (t.kind === 'end') return toks;
  }
}

class Lexer {
  private i = 0;

  constructor(private readonly s: string) {}

  private code(at = this.i): number {
    return this.s.codePointAt(at) ?? -1;
  }

  /** §3.2.2 FWS: WSP, and CRLF only when WSP follows; true if one was consumed here. */
  private fws(): boolean {
    const c = this.code();
    if (c === 0x20 || c === 0x09) return (this.i++, true);
    if (c === 0x0d && this.s[this.i + 1] === '\n' && /[ \t]/.test(this.s[this.i + 2] ?? '')) return ((this.i += 2), true);
    return false;
  }

  token(): Tok {
    const start = this.i;
    let bad: string | null = null;
    let ws = false;
    for (;;) {
      if (this.fws()) ws = true;
      else if (this.s[this.i] === '(') {
        ws = true;
        bad ??= this.comment();
      } else break;
    }
    const at = this.i;
    const tok = (kind: TokKind, text: string, why: string | null): Tok => ({ kind, text, raw: this.s.slice(start, this.i), ws, bad: bad ?? why });
    if (at >= this.s.length) return tok('end', '', null);
    const ch = this.s[at] as string;
    if (ch === '"') return this.quoted(tok);
    if (ch === '[') return this.literal(tok);
    if (SPECIALS.includes(ch)) return (this.i++, tok('special', ch, null));
    const c = this.code();
    if (ATEXT.test(ch) || isUtf8Text(c)) return this.atom(tok);
    this.i += c > 0xffff ? 2 : 1;
    if (ch === '\r' && this.s[this.i] === '\n') this.i++;
    return tok('junk', ch, `unexpected ${JSON.stringify(ch)}`);
  }

  private atom(tok: (k: TokKind, t: string, b: string | null) => Tok): Tok {
    const from = this.i;
    for (let c = this.code(); c >= 0; c = this.code()) {
      if (c < 0x80 ? !ATEXT.test(String.fromCharCode(c)) : !isUtf8Text(c)) break;
      this.i += c > 0xffff ? 2 : 1;
    }
    return tok('atom', this.s.slice(from, this.i), null);
  }

  /** §3.2.4 quoted-string; §4.1 obs-qtext and obs-qp. */
  private quoted(tok: (k: TokKind, t: string, b: string | null) => Tok): Tok {
    this.i++;
    let text = '';
    let bad: string | null = null;
    for (;;) {
      const c = this.code();
      if (c < 0) return tok('qs', text, 'unclosed quoted string');
      if (c === 0x22) break;
      if (this.fws()) text += this.s[this.i - 1] === '\n' ? '' : this.s[this.i - 1];
      else if (c === 0x5c) {
        const q = this.code(this.i + 1);
        bad ??= q < 0 ? 'backslash at the end' : q >= 0x80 ? 'backslash before a non-ASCII character' : null;
        text += this.s[this.i + 1] ?? '';
        this.i += 2;
      } else {
        if (c === 0 || c === 0x0d || c === 0x0a || (c >= 0x80 && !isUtf8Text(c))) bad ??= `${JSON.stringify(String.fromCodePoint(c))} in a quoted string`;
        text += String.fromCodePoint(c);
        this.i += c > 0xffff ? 2 : 1;
      }
    }
    this.i++;
    return tok('qs', text, bad);
  }

  /** §3.4.1 domain-literal, dtext = %d33-90 / %d94-126 / obs-dtext. */
  private literal(tok: (k: TokKind, t: string, b: string | null) => Tok): Tok {
    this.i++;
    let text = '';
    let bad: string | null = null;
    for (;;) {
      const c = this.code();
      if (c < 0) return tok('lit', text, 'unclosed domain literal');
      if (c === 0x5d) break;
      if (this.fws()) text += this.s[this.i - 1] === '\n' ? '' : this.s[this.i - 1];
      else if (c === 0x5c) {
        const q = this.code(this.i + 1);
        if (q < 0 || q >= 0x80) bad ??= 'bad quoted-pair in a domain literal';
        text += this.s.slice(this.i, this.i + 2);
        this.i += 2;
      } else {
        const ok = (c >= 33 && c <= 90) || (c >= 94 && c <= 126) || isObsCtl(c);
        if (!ok) bad ??= `${JSON.stringify(String.fromCodePoint(c))} in a domain literal`;
        text += String.fromCodePoint(c);
        this.i += c > 0xffff ? 2 : 1;
      }
    }
    this.i++;
    return tok('lit', text, bad);
  }

  /** §3.2.2 comment, nested, with ctext (%d33-39 / %d42-91 / %d93-126 / obs-ctext) and quoted-pairs; returns what is wrong. */
  private comment(): string | null {
    let depth = 0;
    let bad: string | null = null;
    for (;;) {
      const c = this.code();
      if (c < 0) return 'unclosed comment';
      if (this.fws()) continue;
      this.i += c > 0xffff ? 2 : 1;
      if (c === 0x28) depth++;
      else if (c === 0x29) {
        if (--depth === 0) return bad;
      } else if (c === 0x5c) {
        const q = this.code();
        if (q < 0 || q >= 0x80) bad ??= 'bad quoted-pair in a comment';
        this.i += q > 0xffff ? 2 : 1;
      } else if (c === 0 || c === 0x0d || c === 0x0a || (c >= 0x80 && c < 0xa0)) bad ??= `${JSON.stringify(String.fromCodePoint(c))} in a comment`;
    }
  }
}
