import { hashApiKey } from '../auth/keys.ts'
import type { Db } from '../db/database.ts'
import { newId, nowIso } from '../lib/ids.ts'
import type { Caller } from '../router/types.ts'

const iso = (ms: number) => new Date(ms).toISOString()

/**
 * Server-side state of browser logins to apps. A login link is a row that its first visit
 * deletes (one statement, so of two concurrent visits exactly one gets it, on one host or many
 * sharing the database); the visit starts a session row. Both rows name the API key the link was
 * made with: revoking the key deletes them (foreign key, cascade) and the joins below ignore rows
 * whose key is gone. Logout deletes the session row. Nothing is cached in the process, so every
 * router on the database sees a revocation at once.
 */
export class AppLoginStore {
  constructor(private readonly db: Db) {}

  /**
   * Records a link for `userId`, made with `apiKey` (the caller's own key, as presented). Null if
   * that key no longer exists. Expired rows are swept here, so the tables stay small.
   */
  async createLink(input: {
    userId: string
    apiKey: string
    subdomain: string
    expiresAt: number
  }): Promise<string | null> {
    await this.purgeExpired()
    const id = newId('lnk', 24)
    const res = await this.db
      .insertInto('app_login_links')
      .columns(['id', 'user_id', 'key_id', 'subdomain', 'expires_at', 'created_at'])
      .expression((eb) =>
        eb
          .selectFrom('api_keys')
          .select([
            eb.val(id).as('id'),
            'user_id',
            'id as key_id',
            eb.val(input.subdomain).as('subdomain'),
            eb.val(iso(input.expiresAt)).as('expires_at'),
            eb.val(nowIso()).as('created_at'),
          ])
          .where('key_hash', '=', hashApiKey(input.apiKey))
          .where('user_id', '=', input.userId),
      )
      .executeTakeFirst()
    return res.numInsertedOrUpdatedRows === 1n ? id : null
  }

  /** Uses up a link and starts a session on the same user and key; null if none can start. */
  async redeem(
    linkId: string,
    subdomain: string,
    sessionExpiresAt: number,
  ): Promise<{ sessionId: string; caller: Caller } | null> {
    const link = await this.db
      .deleteFrom('app_login_links')
      .where('id', '=', linkId)
      .where('subdomain', '=', subdomain)
      .returning(['user_id', 'key_id', 'expires_at'])
      .executeTakeFirst()
    if (!link || link.expires_at <= nowIso()) return null
    const sessionId = newId('ses', 24)
    // Through api_keys: a key revoked since the link was made starts nothing.
    await this.db
      .insertInto('app_sessions')
      .columns(['id', 'user_id', 'key_id', 'subdomain', 'expires_at', 'created_at'])
      .expression((eb) =>
        eb
          .selectFrom('api_keys')
          .select([
            eb.val(sessionId).as('id'),
            'user_id',
            'id as key_id',
            eb.val(subdomain).as('subdomain'),
            eb.val(iso(sessionExpiresAt)).as('expires_at'),
            eb.val(nowIso()).as('created_at'),
          ])
          .where('id', '=', link.key_id)
          .where('user_id', '=', link.user_id),
      )
      .execute()
    const caller = await this.sessionCaller(sessionId, subdomain)
    return caller ? { sessionId, caller } : null
  }

  /** The session's user (e-mail as it is now) while the session, its key and user exist. */
  async sessionCaller(sessionId: string, subdomain: string): Promise<Caller | null> {
    const row = await this.db
      .selectFrom('app_sessions as s')
      .innerJoin('api_keys as k', (j) =>
        j.onRef('k.id', '=', 's.key_id').onRef('k.user_id', '=', 's.user_id'),
      )
      .innerJoin('users as u', 'u.id', 's.user_id')
      .select(['u.id', 'u.email'])
      .where('s.id', '=', sessionId)
      .where('s.subdomain', '=', subdomain)
      .where('s.expires_at', '>', nowIso())
      .executeTakeFirst()
    return row ? { userId: row.id, email: row.email } : null
  }

  async endSession(sessionId: string): Promise<void> {
    await this.db.deleteFrom('app_sessions').where('id', '=', sessionId).execute()
  }

  async purgeExpired(): Promise<void> {
    const now = nowIso()
    await this.db.deleteFrom('app_login_links').where('expires_at', '<=', now).execute()
    await this.db.deleteFrom('app_sessions').where('expires_at', '<=', now).execute()
  }
}
