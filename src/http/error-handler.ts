import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import http from 'node:http'
import type { Socket } from 'node:net'
import {
  hasZodFastifySchemaValidationErrors,
  isResponseSerializationError,
} from 'fastify-type-provider-zod'
import { ApiError, errorCodes, type ErrorCode } from './errors.ts'

const send = (code: ErrorCode | string, message: string, details?: unknown) => ({
  error: details === undefined ? { code, message } : { code, message, details },
})

/** The one error handler: every failure leaves as `{"error":{"code","message"}}`, 5xx opaque. */
export function installErrorHandling(app: FastifyInstance) {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (err instanceof ApiError) {
      if (err.headers) void reply.headers(err.headers)
      if (err.statusCode >= 500) request.log.warn({ err }, 'request failed')
      return reply.code(err.statusCode).send(send(err.code, err.message, err.details))
    }
    if (hasZodFastifySchemaValidationErrors(err)) {
      const where = err.validationContext ?? 'request'
      const fields = err.validation.map((v) => {
        const field = `${where}${v.instancePath.replaceAll('/', '.')}`
        return { field, message: v.message ?? 'invalid' }
      })
      const summary = fields.map((f) => `${f.field}: ${f.message}`).join('; ')
      return reply.code(400).send(send('VALIDATION_ERROR', `invalid ${where}: ${summary}`, fields))
    }
    if (isResponseSerializationError(err)) {
      request.log.error({ err, issues: err.cause.issues }, 'response does not match its schema')
      return reply.code(500).send(send('INTERNAL', 'internal error'))
    }
    switch (err.code) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return reply.code(413).send(send('PAYLOAD_TOO_LARGE', 'request body is too large'))
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return reply
          .code(415)
          .send(send('UNSUPPORTED_MEDIA_TYPE', 'send JSON with Content-Type: application/json'))
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
        return reply.code(400).send(send('INVALID_JSON', 'the JSON body is empty'))
    }
    if (err.statusCode === 400 && (err instanceof SyntaxError || /JSON/i.test(err.message))) {
      return reply.code(400).send(send('INVALID_JSON', 'the request body is not valid JSON'))
    }
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      return reply.code(err.statusCode).send(send('BAD_REQUEST', err.message))
    }
    request.log.error({ err }, 'unhandled error')
    return reply.code(500).send(send('INTERNAL', 'internal error'))
  })

  app.setNotFoundHandler((request, reply) =>
    reply
      .code(404)
      .send(send('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`)),
  )
}

/**
 * Fastify's `frameworkErrors`: URLs its router refuses before any route (or the error handler)
 * runs: malformed percent-encoding, a path parameter over its length limit.
 */
export function answerFrameworkError(
  err: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
) {
  switch (err.code) {
    case 'FST_ERR_BAD_URL':
      return reply.code(400).send(send('BAD_REQUEST', 'the URL is not validly percent-encoded'))
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return reply.code(414).send(send('URI_TOO_LONG', 'a path parameter of the URL is too long'))
  }
  request.log.error({ err }, 'router error')
  return reply.code(500).send(send('INTERNAL', 'internal error'))
}

/** What Node's HTTP parser reports before any route runs, by its error code. */
const clientErrors: Record<string, [ErrorCode, string]> = {
  HPE_HEADER_OVERFLOW: ['HEADERS_TOO_LARGE', 'the request headers are too large'],
  HPE_CHUNK_EXTENSIONS_OVERFLOW: ['PAYLOAD_TOO_LARGE', 'the chunk extensions are too large'],
  ERR_HTTP_REQUEST_TIMEOUT: ['REQUEST_TIMEOUT', 'the request did not arrive in time'],
}

/**
 * Fastify's `clientErrorHandler`: requests Node's parser refuses (headers too large, malformed,
 * too slow) get our error shape too, then the connection closes as Node's own handler does.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Socket) {
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  const [code, message] = clientErrors[err.code ?? ''] ?? ['BAD_REQUEST', 'malformed HTTP request']
  const status = errorCodes[code]
  const body = JSON.stringify(send(code, message))
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    )
  }
  socket.destroy(err)
}
