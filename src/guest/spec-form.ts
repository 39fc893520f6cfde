// How an exec or pty spec reaches the agent. Agents from 0.2.0 on read it from the start of the
// request body (a length-prefixed preamble, agent/protocol.ts). Older agents read it from a
// header (`x-exec-spec`, `x-pty-spec`), and they stay in service: a workspace keeps the image its
// disk was made on (src/node/launch.ts), so every workspace made before 0.2.0 runs one forever.
// For them the spec goes as a header still, but as pure-ASCII JSON: node's HTTP/2 keeps only the
// low byte of each character of a header value (`ħ` became `'`), while `\u0127` arrives intact
// and the old agent's JSON.parse turns it back into `ħ`.
import { EXEC_LIMITS, specPreamble } from '../../agent/protocol.ts'
import { GuestError } from './errors.ts'

/** The first agent version that takes specs in the body. */
export const BODY_SPEC_SINCE = '0.2.0'

/**
 * Largest header-borne spec, in bytes of (ASCII) JSON. nghttp2 refuses to send a header block
 * over 64 KiB (the stream fails) and to receive a header field over 64 KiB (the whole session
 * fails, taking every other stream with it); the rest of the 64 KiB is room for the request's
 * other headers. The old agent's own limits (a command of 256 Ki UTF-16 units, env values of
 * 128 Ki) are wider, so this is the one that binds.
 */
export const HEADER_SPEC_MAX_BYTES = 60 * 1024

const KIB = 1024

export interface SpecRequest {
  /** Extra request headers (the spec, for an old agent). */
  headers: Record<string, string>
  /** What the body starts with (the spec, for a current agent). */
  preamble: Buffer | null
}

/**
 * Whether an agent reporting `version` reads specs from the body. A version this host cannot
 * read is taken as current: only the versions known to predate the body form get the header.
 */
export function takesBodySpec(version: string | null | undefined): boolean {
  const have = parseVersion(version)
  if (!have) return true
  const since = parseVersion(BODY_SPEC_SINCE)!
  for (let i = 0; i < 3; i++) if (have[i] !== since[i]) return have[i] > since[i]
  return true
}

function parseVersion(v: string | null | undefined): number[] | null {
  const m = /^(\d{1,9})\.(\d{1,9})\.(\d{1,9})(?:$|[-+])/.exec(v ?? '')
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : null
}

/**
 * JSON with every character outside printable ASCII escaped as `\uXXXX` (a character beyond
 * U+FFFF as its two surrogates), so it is the same string in any 8-bit reading. DEL (0x7f) is
 * escaped too: it is no valid header character. JSON.stringify already escapes the controls,
 * and outside strings its output is ASCII, so only string contents change.
 */
export function asciiJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[\u007f-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  )
}

/** How to send `spec` to an agent that reported `agentVersion` (null: not known). */
export function specRequest(
  kind: 'exec' | 'pty',
  spec: object,
  agentVersion: string | null | undefined,
): SpecRequest {
  if (takesBodySpec(agentVersion)) return { headers: {}, preamble: specPreamble(spec) }
  const json = asciiJson(spec)
  if (json.length > HEADER_SPEC_MAX_BYTES) {
    throw new GuestError(400, 'AGENT_TOO_OLD', tooLargeForOldAgent(kind, agentVersion!, json))
  }
  return { headers: { [`x-${kind}-spec`]: json }, preamble: null }
}

function tooLargeForOldAgent(kind: 'exec' | 'pty', version: string, json: string): string {
  const what = kind === 'exec' ? 'command' : 'terminal command'
  return (
    `this workspace's agent (${version}) is older than ${BODY_SPEC_SINCE} and takes commands ` +
    `(with their env) up to ${HEADER_SPEC_MAX_BYTES / KIB} KiB, counted as JSON in which a ` +
    `character outside ASCII takes 6 bytes (an emoji 12); this ${what} needs ` +
    `${Math.ceil(json.length / KIB)} KiB. Workspaces created from this node's current image ` +
    `have a newer agent, which takes commands up to ${EXEC_LIMITS.commandBytes / KIB} KiB; an ` +
    `existing workspace keeps the image its disk was made on.`
  )
}
