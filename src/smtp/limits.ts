/**
 * Every protocol limit Petrel enforces: its default, where it comes from and
 * the reply a client gets when it is crossed. Configurable ones are defaults
 * that petrel.conf may override (see src/config/schema.ts).
 */

export const LIMITS = {
  /** RFC 5321 §4.5.3.1.4: a command line is at most 512 octets including CRLF. Reply 500 5.5.2. */
  commandLine: 512,
  /** RFC 5321 §4.5.3.1.6: a text line in DATA is at most 1000 octets including CRLF.
   *  Petrel does not refuse longer lines (RFC 5321 §4.5.3.1 asks receivers to be liberal),
   *  but never buffers a line: the DATA decoder streams. */
  textLine: 1000,
  /** RFC 5321 §4.5.3.1.8: at least 100 recipients must be accepted. Over it: 452 4.5.3. */
  maxRecipients: 100,
  /** SIZE (RFC 1870) advertised and enforced while streaming. Over it: 552 5.3.4. */
  maxMessageSize: 26_214_400,
  /** Errors in one session before 421 4.7.0 and close (cf. Postfix smtpd_hard_error_limit, aiosmtpd BOGUS_LIMIT). */
  maxErrors: 10,
  /** Bytes a client may pipeline while a policy question or a commit is open; beyond it we stop reading the socket. */
  pipelineBuffer: 64 * 1024,
  /** RFC 5321 §6.3 / §4.4: more than this many Received: fields means a mail loop. Reply 554 5.4.6. */
  maxReceivedHeaders: 50,
  /** Longest BODY record payload the session hands to the queue (bounded memory per session). */
  bodyChunk: 64 * 1024,
} as const;
