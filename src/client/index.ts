import createClient, { type Middleware } from 'openapi-fetch'
import type { components, paths } from './api-types.ts'

export type Schemas = components['schemas']
export type Vm = Schemas['Vm']
export type RigboxPaths = paths

/** An API error as the server sent it: `{"error":{"code","message"}}` plus the HTTP status. */
export class RigboxApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message)
  }
}

export interface ClientOptions {
  baseUrl: string
  apiKey?: string
  fetch?: typeof fetch
}

/** A typed client of the versioned API (`/api/v1`), generated from the server's OpenAPI. */
export function createRigboxClient(opts: ClientOptions) {
  const client = createClient<paths>({
    baseUrl: opts.baseUrl.replace(/\/+$/, ''),
    fetch: opts.fetch,
  })
  const auth: Middleware = {
    onRequest({ request }) {
      if (opts.apiKey) request.headers.set('authorization', `Bearer ${opts.apiKey}`)
      return request
    },
  }
  client.use(auth)
  return client
}
export type RigboxClient = ReturnType<typeof createRigboxClient>

/** The data of a response, or a RigboxApiError carrying the server's code and message. */
export function unwrap<T>(res: { data?: T; error?: unknown; response: Response }): T {
  if (res.error !== undefined || !res.response.ok) {
    const body = res.error as { error?: { code?: string; message?: string; details?: unknown } }
    throw new RigboxApiError(
      res.response.status,
      body?.error?.code ?? `HTTP_${res.response.status}`,
      body?.error?.message ?? res.response.statusText,
      body?.error?.details,
    )
  }
  return res.data as T
}
