import { z } from 'zod'
import { ApiError, notFound } from '../http/errors.ts'
import { defineRoute, messageSchema } from '../http/route.ts'
import type { AuthStore, User } from './store.ts'

const userSchema = z
  .object({
    id: z.string(),
    email: z.string(),
    name: z.string().nullable(),
    plan: z.enum(['free', 'pro']),
    is_admin: z.boolean(),
    created_at: z.string(),
  })
  .meta({ id: 'User' })

const apiKeySchema = z
  .object({
    id: z.string(),
    name: z.string(),
    prefix: z.string().describe('first characters of the key, to tell keys apart'),
    created_at: z.string(),
    last_used_at: z.string().nullable(),
  })
  .meta({ id: 'ApiKey' })

const createdKeySchema = z
  .object({
    api_key: apiKeySchema,
    key: z.string().describe('the secret key: shown this once, stored only as a hash'),
  })
  .meta({ id: 'CreateApiKeyResponse' })

export const publicUser = (u: User) => ({ ...u, is_admin: u.is_admin === 1 })
const keyName = z.string().trim().min(1).max(100)

export function authRoutes(auth: AuthStore) {
  return [
    defineRoute({
      method: 'GET',
      path: '/users/me',
      summary: 'Who the API key belongs to',
      tag: 'account',
      auth: 'user',
      rateClass: 'auth',
      response: z.object({ user: userSchema }),
      flat: { schema: userSchema, from: (r) => r.user },
      handler: async ({ user }) => ({ user: publicUser(user) }),
    }),
    defineRoute({
      method: 'POST',
      path: '/admin/users',
      summary: 'Create a user and its first API key (administrators only)',
      tag: 'admin',
      auth: 'admin',
      rateClass: 'auth',
      body: z.object({
        email: z.email(),
        plan: z.enum(['free', 'pro']).default('free'),
        name: z.string().max(200).nullish(),
      }),
      status: 201,
      response: z.object({ user: userSchema, api_key: z.string() }),
      handler: async ({ body }) => {
        if (await auth.findUserByEmail(body.email)) {
          throw new ApiError('CONFLICT', `a user with email ${body.email} exists already`)
        }
        const user = await auth.createUser(body)
        const { key } = await auth.createKey(user.id, 'default')
        return { user: publicUser(user), api_key: key }
      },
    }),
    defineRoute({
      method: 'POST',
      path: '/api-keys',
      summary: 'Create an API key (the key is shown once)',
      tag: 'api-keys',
      auth: 'user',
      rateClass: 'auth',
      body: z.object({ name: keyName.optional() }).optional(),
      status: 201,
      response: createdKeySchema,
      handler: async ({ user, body }) => {
        const { key, row } = await auth.createKey(user.id, body?.name ?? 'unnamed')
        const { id, name, prefix, created_at, last_used_at } = row
        return { api_key: { id, name, prefix, created_at, last_used_at }, key }
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/api-keys',
      summary: 'List your API keys (never the keys themselves)',
      tag: 'api-keys',
      auth: 'user',
      rateClass: 'auth',
      response: z.object({ api_keys: z.array(apiKeySchema) }),
      flat: { schema: z.array(apiKeySchema), from: (r) => r.api_keys },
      handler: async ({ user }) => ({ api_keys: await auth.listKeys(user.id) }),
    }),
    defineRoute({
      method: 'DELETE',
      path: '/api-keys/:id',
      summary: 'Revoke an API key; it stops working at once',
      tag: 'api-keys',
      auth: 'user',
      rateClass: 'auth',
      params: z.object({ id: z.string().min(1).max(64) }),
      response: messageSchema,
      handler: async ({ user, params }) => {
        if (!(await auth.deleteKey(user.id, params.id))) throw notFound('api key', params.id)
        return { message: `API key ${params.id} revoked` }
      },
    }),
  ]
}
