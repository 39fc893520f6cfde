import type http from 'node:http'

/**
 * Error answers. Browsers (an Accept naming text/html) get a small page; everything else gets
 * the API's `{"error":{"code","message"}}` shape, so scripts and `curl` read the same codes.
 */
export interface RouterError {
  status: number
  code: string
  message: string
  /** Extra sentence for the HTML page only. */
  hint?: string
  /** Extra response headers (e.g. Retry-After). */
  headers?: Record<string, string>
}

const titles: Record<number, string> = {
  400: 'Bad request',
  401: 'Not signed in',
  403: 'Not allowed',
  404: 'No such app',
  429: 'Too many attempts',
  431: 'Request headers too large',
  500: 'Router error',
  502: 'App unavailable',
  504: 'App timed out',
}

const escapeHtml = (s: string) =>
  s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  )

export function wantsHtml(accept: string | undefined): boolean {
  return !!accept && accept.includes('text/html')
}

export function renderError(
  err: RouterError,
  accept: string | undefined,
): { headers: Record<string, string>; body: string } {
  const base = {
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...err.headers,
  }
  if (!wantsHtml(accept)) {
    const body = JSON.stringify({ error: { code: err.code, message: err.message } })
    return { headers: { ...base, 'content-type': 'application/json; charset=utf-8' }, body }
  }
  const title = titles[err.status] ?? 'Error'
  const hint = err.hint ? `<p>${escapeHtml(err.hint)}</p>` : ''
  const body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${err.status} ${title}</title>
<meta name="viewport" content="width=device-width">
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}code{background:#eee;padding:0 .2em}small{color:#777}</style></head>
<body><h1>${err.status} · ${title}</h1><p>${escapeHtml(err.message)}</p>${hint}
<small>Rigbox router · ${escapeHtml(err.code)}</small></body></html>
`
  return {
    headers: {
      ...base,
      'content-type': 'text/html; charset=utf-8',
      'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
    },
    body,
  }
}

/** `close`: the connection ends after this answer (the request's framing cannot be trusted). */
export function sendError(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  err: RouterError,
  opts: { close?: boolean } = {},
) {
  if (res.headersSent) {
    res.destroy()
    return
  }
  const { headers, body } = renderError(err, req.headers.accept)
  res.writeHead(err.status, {
    ...headers,
    'content-length': Buffer.byteLength(body),
    ...(opts.close && { connection: 'close' }),
  })
  res.end(req.method === 'HEAD' ? undefined : body)
}

/** The same answer written on a raw socket: a refused WebSocket upgrade has no ServerResponse. */
export function rawErrorResponse(err: RouterError, accept: string | undefined): string {
  const { headers, body } = renderError(err, accept)
  const lines = Object.entries({ ...headers, 'content-length': String(Buffer.byteLength(body)) })
  return (
    `HTTP/1.1 ${err.status} ${titles[err.status] ?? 'Error'}\r\nconnection: close\r\n` +
    lines.map(([k, v]) => `${k}: ${v}\r\n`).join('') +
    `\r\n${body}`
  )
}

export const errors = {
  badRequest: (message: string): RouterError => ({ status: 400, code: 'BAD_REQUEST', message }),
  headersTooLarge: (): RouterError => ({
    status: 431,
    code: 'HEADERS_TOO_LARGE',
    message: 'The request line and headers are too large.',
  }),
  notFound: (): RouterError => ({
    status: 404,
    code: 'APP_NOT_FOUND',
    message: 'There is no app at this address, or it is stopped.',
  }),
  badKey: (): RouterError => ({
    status: 401,
    code: 'UNAUTHORIZED',
    message: 'The API key is not valid.',
  }),
  rateLimited: (retryAfterS: number): RouterError => ({
    status: 429,
    code: 'RATE_LIMITED',
    message: `Too many failed sign-ins from your address. Try again in ${retryAfterS} s.`,
    headers: { 'retry-after': String(retryAfterS) },
  }),
  forbidden: (visibility: string, signedIn: boolean): RouterError => ({
    status: 403,
    code: 'FORBIDDEN',
    message: signedIn
      ? 'Your account is not allowed to open this app.'
      : 'This app is not public. Sign in to open it.',
    hint:
      visibility === 'privileged'
        ? 'Ask the owner to add your e-mail address, then open a login link from the Rigbox API or CLI.'
        : 'Only its owner can open it: get a login link for this app from the Rigbox API or CLI.',
  }),
  badLogin: (): RouterError => ({
    status: 403,
    code: 'INVALID_LOGIN_LINK',
    message: 'This login link is invalid or has expired. Ask for a new one.',
  }),
  notRunning: (): RouterError => ({
    status: 502,
    code: 'WORKSPACE_NOT_RUNNING',
    message: "The app's workspace is not running.",
    hint: 'Start the workspace, then reload this page.',
  }),
  portClosed: (): RouterError => ({
    status: 502,
    code: 'APP_PORT_CLOSED',
    message: "Nothing is answering on the app's port inside the workspace.",
    hint: 'Check that the service is running and listening on the configured port.',
  }),
  badGateway: (): RouterError => ({
    status: 502,
    code: 'BAD_GATEWAY',
    message: 'The app closed the connection or sent an invalid response.',
  }),
  timeout: (): RouterError => ({
    status: 504,
    code: 'UPSTREAM_TIMEOUT',
    message: 'The app did not answer in time.',
  }),
  internal: (): RouterError => ({
    status: 500,
    code: 'INTERNAL',
    message: 'The router failed to handle this request.',
  }),
}
