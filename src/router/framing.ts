import type http from 'node:http'

/**
 * How a request's body is delimited, decided once, before anything is forwarded. The router
 * re-frames every body it passes on (a length as a length, chunked as its own chunked encoding),
 * so the app's parser and Node's always agree on where one request ends and the next begins.
 *
 * Node's parser (llhttp, strict) already refuses, before any request event: Transfer-Encoding
 * with Content-Length, a Transfer-Encoding whose last coding is not chunked, duplicate or
 * malformed Content-Length, obs-fold, whitespace before a colon, bare CR/LF, bad chunk sizes.
 * It accepts, and so the router refuses here: codings before `chunked` (`gzip, chunked`, or
 * `identity` and `chunked` on two lines), an empty Transfer-Encoding, Transfer-Encoding on an
 * HTTP/1.0 request (RFC 9112 §6.1: faulty framing), and more than one Host.
 */
export type RequestFraming =
  { kind: 'none' } | { kind: 'length'; length: number } | { kind: 'chunked' }

const DIGITS = /^\d{1,15}$/

export function requestFraming(req: http.IncomingMessage): RequestFraming | { error: string } {
  let hosts = 0
  for (let i = 0; i < req.rawHeaders.length; i += 2)
    if (req.rawHeaders[i].toLowerCase() === 'host') hosts++
  if (hosts > 1) return { error: 'More than one Host header.' }
  const te = req.headers['transfer-encoding']
  const cl = req.headers['content-length']
  if (te !== undefined) {
    if (te.trim().toLowerCase() !== 'chunked')
      return { error: 'Transfer-Encoding other than "chunked" is not accepted.' }
    if (cl !== undefined) return { error: 'Transfer-Encoding and Content-Length together.' }
    if (req.httpVersion !== '1.1') return { error: 'Transfer-Encoding needs HTTP/1.1.' }
    return { kind: 'chunked' }
  }
  if (cl !== undefined) {
    if (!DIGITS.test(cl)) return { error: 'Invalid Content-Length.' }
    return { kind: 'length', length: Number(cl) }
  }
  return { kind: 'none' }
}

/** The framing headers for the upstream copy of a request (others were dropped as hop-by-hop). */
export function applyFraming(headers: http.OutgoingHttpHeaders, framing: RequestFraming): void {
  delete headers['content-length']
  delete headers['transfer-encoding']
  if (framing.kind === 'length') headers['content-length'] = String(framing.length)
  else if (framing.kind === 'chunked') headers['transfer-encoding'] = 'chunked'
}

/**
 * A response the router can pass on faithfully: Node's client parser refuses the ambiguous ones
 * (TE with CL, duplicate CL), but accepts codings it does not undo (`gzip, chunked`, or `gzip`
 * alone, read to the close). Passing those on without their Transfer-Encoding would hand the
 * browser coded bytes as if plain, so they are the app's error (502).
 */
export function responseFramingOk(res: http.IncomingMessage): boolean {
  const te = res.headers['transfer-encoding']
  return te === undefined || te.trim().toLowerCase() === 'chunked'
}
