import type { FastifyError, FastifyInstance } from 'fastify'
import {
  hasZodFastifySchemaValidationErrors,
  isResponseSerializationError,
} from 'fastify-type-provider-zod'
import { ApiError, type ErrorCode } from './errors.ts'

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
