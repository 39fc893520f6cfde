import type { Db } from '../db/database.ts'
import type { UsersTable } from '../db/schema.ts'
import { newId, nowIso } from '../lib/ids.ts'
import { generateApiKey, hashApiKey, keyPrefix } from './keys.ts'

export type User = Omit<UsersTable, 'is_admin'> & { is_admin: number }
export type Plan = UsersTable['plan']

export class AuthStore {
  constructor(private readonly db: Db) {}

  async createUser(input: { email: string; plan: Plan; name?: string | null; isAdmin?: boolean }) {
    const user: User = {
      id: newId('usr', 12),
      email: input.email.toLowerCase(),
      name: input.name ?? null,
      plan: input.plan,
      is_admin: input.isAdmin ? 1 : 0,
      created_at: nowIso(),
    }
    await this.db.insertInto('users').values(user).execute()
    return user
  }

  findUserByEmail(email: string) {
    return this.db
      .selectFrom('users')
      .selectAll()
      .where('email', '=', email.toLowerCase())
      .executeTakeFirst()
  }

  findUserById(id: string) {
    return this.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst()
  }

  findAdmin() {
    return this.db.selectFrom('users').selectAll().where('is_admin', '=', 1).executeTakeFirst()
  }

  /** Makes a key for a user; the plain key is returned once and never stored. */
  async createKey(userId: string, name: string) {
    const key = generateApiKey()
    const row = {
      id: newId('key', 12),
      user_id: userId,
      name,
      prefix: keyPrefix(key),
      key_hash: hashApiKey(key),
      created_at: nowIso(),
      last_used_at: null,
    }
    await this.db.insertInto('api_keys').values(row).execute()
    return { key, row }
  }

  listKeys(userId: string) {
    return this.db
      .selectFrom('api_keys')
      .select(['id', 'name', 'prefix', 'created_at', 'last_used_at'])
      .where('user_id', '=', userId)
      .orderBy('created_at')
      .execute()
  }

  async deleteKey(userId: string, keyId: string): Promise<boolean> {
    const res = await this.db
      .deleteFrom('api_keys')
      .where('id', '=', keyId)
      .where('user_id', '=', userId)
      .executeTakeFirst()
    return res.numDeletedRows > 0n
  }

  /** The user a key belongs to, or undefined; a deleted key finds nothing from that moment on. */
  async authenticate(key: string): Promise<{ user: User; keyId: string } | undefined> {
    const row = await this.db
      .selectFrom('api_keys')
      .innerJoin('users', 'users.id', 'api_keys.user_id')
      .select([
        'api_keys.id as key_id',
        'api_keys.last_used_at',
        'users.id',
        'users.email',
        'users.name',
        'users.plan',
        'users.is_admin',
        'users.created_at',
      ])
      .where('api_keys.key_hash', '=', hashApiKey(key))
      .executeTakeFirst()
    if (!row) return undefined
    const { key_id, last_used_at, ...user } = row
    // last_used_at is kept to the minute: writing it on every request would serialize reads.
    const now = new Date()
    if (!last_used_at || now.getTime() - Date.parse(last_used_at) > 60_000) {
      await this.db
        .updateTable('api_keys')
        .set({ last_used_at: now.toISOString() })
        .where('id', '=', key_id)
        .execute()
    }
    return { user, keyId: key_id }
  }
}
