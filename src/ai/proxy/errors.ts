/**
 * Errors in the shape each client parses: the OpenAI SDK reads `{"error":{"message","type","code"}}`
 * (`err.code`, `err.type`), the Anthropic SDK `{"type":"error","error":{"type","message"}}` (and
 * `error.details.error_code` as `err.errorCode`). Both carry our code from src/http/errors.ts.
 */
import { ApiError } from '../../http/errors.ts'

export type Shape = 'openai' | 'anthropic'

/** OpenAI's own code for an unknown model, which clients (and the SDK's users) look for. */
export const MODEL_NOT_FOUND = 'model_not_found'

export function modelNotFound(model: string, why = 'does not exist or is not available'): ApiError {
  return new ApiError('BAD_REQUEST', `the model \`${model}\` ${why}; GET /v1/models lists them`, {
    code: MODEL_NOT_FOUND,
  })
}

function openaiType(status: number): string {
  if (status === 401) return 'authentication_error'
  if (status === 402) return 'insufficient_quota'
  if (status === 403) return 'permission_error'
  if (status === 404) return 'not_found_error'
  if (status === 429) return 'rate_limit_error'
  if (status >= 500) return 'api_error'
  return 'invalid_request_error'
}

function anthropicType(status: number): string {
  if (status === 401) return 'authentication_error'
  if (status === 402) return 'billing_error'
  if (status === 403) return 'permission_error'
  if (status === 404) return 'not_found_error'
  if (status === 413) return 'request_too_large'
  if (status === 429) return 'rate_limit_error'
  if (status >= 500) return 'api_error'
  return 'invalid_request_error'
}

/** What any failure becomes: ours as is, a Fastify one (body too large, bad JSON) by its status. */
export function asApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err
  const status = (err as { statusCode?: number }).statusCode ?? 500
  if (status === 413) return new ApiError('PAYLOAD_TOO_LARGE', 'request body too large')
  if (status >= 400 && status < 500) return new ApiError('BAD_REQUEST', (err as Error).message)
  return new ApiError('INTERNAL', 'internal error')
}

export function errorBody(shape: Shape, err: ApiError): object {
  const code = (err.details as { code?: string } | undefined)?.code ?? err.code
  if (shape === 'anthropic') {
    return {
      type: 'error',
      error: {
        type: anthropicType(err.statusCode),
        message: err.message,
        details: { error_code: code },
      },
    }
  }
  return { error: { message: err.message, type: openaiType(err.statusCode), param: null, code } }
}
