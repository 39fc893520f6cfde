import type { Logger } from 'pino'
import type { Db } from '../db/database.ts'
import type { AiMode, AiProvider, WorkspaceAiTable } from '../db/schema.ts'
import { ApiError } from '../http/errors.ts'
import type { CreditStore } from './credits.ts'
import type { SecretBox } from './secrets.ts'
import type { CallSettings, SettingsSource } from './types.ts'
import { MANAGED_AI_ENV } from './vm-env.ts'

/**
 * Who may call AI from a workspace, and how (docs/ai.md, "Settings and BYOK"). A workspace's own
 * mode, provider and model win; each one it leaves null is its owner's default (`ai_accounts`).
 * The BYOK key belongs to the workspace alone, is stored sealed (secrets.ts) and is opened only
 * for a call or the VM's env, never for a response.
 */
export const BUILTIN_DEFAULTS = {
  mode: 'managed',
  provider: 'openai',
  model: 'rigbox/default',
} as const satisfies { mode: AiMode; provider: AiProvider; model: string }

export type ConfigStatus = 'managed_active' | 'byok_active' | 'invalid_missing_key' | 'disabled'

export interface WorkspaceAiView {
  mode: AiMode
  provider: AiProvider
  model: string
  status: ConfigStatus
  updated_at: string
}

/** A PUT's fields: undefined keeps the stored value, null clears it (to the owner's default). */
export interface ConfigPatch {
  mode?: AiMode | null
  provider?: AiProvider | null
  model?: string | null
  api_key?: string | null
}

export interface DefaultsPatch {
  default_mode?: AiMode | null
  default_provider?: AiProvider | null
  default_model?: string | null
}

export interface Defaults {
  default_mode: AiMode
  default_provider: AiProvider
  default_model: string
}

export interface SettingsDeps {
  db: Db
  accounts: Pick<CreditStore, 'account'>
  secrets: SecretBox
  log: Logger
  /**
   * Called after a change that may alter a workspace's effective settings (its VM's AI env), once
   * per workspace; a failure is logged and the change stands (it applies at the next boot).
   */
  onSettingsChanged?: (workspaceId: string) => Promise<void>
}

interface Resolved {
  workspaceId: string
  workspaceName: string
  userId: string
  createdAt: string
  own: Omit<WorkspaceAiTable, 'workspace_id'> | null
  defaults: Defaults
}

/** The AI env a VM gets (the lead wires it into the boot env and live reconfiguration). */
export function vmEnv(
  settings: Pick<CallSettings, 'mode' | 'provider' | 'apiKey'>,
): Record<string, string> {
  switch (settings.mode) {
    case 'managed':
      return { ...MANAGED_AI_ENV, RIGBOX_AI_MODE: 'managed' }
    case 'byok': {
      const name = settings.provider && byokKeyVar[settings.provider]
      return name && settings.apiKey
        ? { RIGBOX_AI_MODE: 'byok', [name]: settings.apiKey }
        : { RIGBOX_AI_MODE: 'byok' }
    }
    default:
      return { RIGBOX_AI_MODE: 'off' }
  }
}

/** The variable each provider's own SDK reads its key from. */
export const byokKeyVar: Record<AiProvider, string> = {
  openai: 'OPENAI_API_KEY',
  anthropic: 'ANTHROPIC_API_KEY',
  google: 'GOOGLE_API_KEY',
}

const effective = (r: Resolved) => ({
  mode: r.own?.mode ?? r.defaults.default_mode,
  provider: r.own?.provider ?? r.defaults.default_provider,
  model: r.own?.model ?? r.defaults.default_model,
})

function statusOf(mode: AiMode, hasKey: boolean): ConfigStatus {
  if (mode === 'managed') return 'managed_active'
  if (mode === 'off') return 'disabled'
  return hasKey ? 'byok_active' : 'invalid_missing_key'
}

export class SettingsStore implements SettingsSource {
  constructor(private readonly d: SettingsDeps) {}

  private async resolve(workspaceId: string): Promise<Resolved | null> {
    const row = await this.d.db
      .selectFrom('workspaces as w')
      .leftJoin('workspace_ai as a', 'a.workspace_id', 'w.id')
      .leftJoin('ai_accounts as u', 'u.user_id', 'w.user_id')
      .select([
        'w.id',
        'w.name',
        'w.user_id',
        'w.created_at',
        'a.workspace_id as own',
        'a.mode',
        'a.provider',
        'a.model',
        'a.api_key_enc',
        'a.updated_at',
        'u.mode as default_mode',
        'u.default_provider',
        'u.default_model',
      ])
      .where('w.id', '=', workspaceId)
      .executeTakeFirst()
    if (!row) return null
    return {
      workspaceId: row.id,
      workspaceName: row.name,
      userId: row.user_id,
      createdAt: row.created_at,
      own: row.own
        ? {
            mode: row.mode,
            provider: row.provider,
            model: row.model,
            api_key_enc: row.api_key_enc,
            updated_at: row.updated_at as string,
          }
        : null,
      defaults: {
        default_mode: row.default_mode ?? BUILTIN_DEFAULTS.mode,
        default_provider: row.default_provider ?? BUILTIN_DEFAULTS.provider,
        default_model: row.default_model ?? BUILTIN_DEFAULTS.model,
      },
    }
  }

  /** The settings a call from the workspace is served with; the key decrypted for it alone. */
  async forCall(workspaceId: string): Promise<CallSettings | null> {
    const r = await this.resolve(workspaceId)
    if (!r) return null
    const { mode, provider, model } = effective(r)
    let apiKey: string | null = null
    if (mode === 'byok' && r.own?.api_key_enc) {
      try {
        apiKey = this.d.secrets.open(r.own.api_key_enc, workspaceId)
      } catch (err) {
        // The master key changed or the row was tampered with: as good as no key.
        this.d.log.warn({ workspaceId, reason: (err as Error).message }, 'BYOK key unreadable')
      }
    }
    return {
      userId: r.userId,
      workspaceId: r.workspaceId,
      workspaceName: r.workspaceName,
      mode,
      provider: mode === 'byok' ? provider : null,
      apiKey,
      model,
    }
  }

  /** The AI part of the workspace VM's env (vmEnv of its current settings). */
  async vmEnvFor(workspaceId: string): Promise<Record<string, string>> {
    const s = await this.forCall(workspaceId)
    return s ? vmEnv(s) : {}
  }

  private view(r: Resolved): WorkspaceAiView {
    const { mode, provider, model } = effective(r)
    return {
      mode,
      provider,
      model,
      status: statusOf(mode, Boolean(r.own?.api_key_enc)),
      updated_at: r.own?.updated_at ?? r.createdAt,
    }
  }

  private async mustResolve(workspaceId: string) {
    const r = await this.resolve(workspaceId)
    if (!r) throw new ApiError('WORKSPACE_NOT_FOUND', `workspace ${workspaceId} not found`)
    return r
  }

  /** The caller checks ownership first (a foreign workspace is 404 there). */
  async config(workspaceId: string): Promise<WorkspaceAiView> {
    return this.view(await this.mustResolve(workspaceId))
  }

  async mode(workspaceId: string): Promise<{ mode: AiMode; source: 'workspace' | 'user_default' }> {
    const r = await this.mustResolve(workspaceId)
    return { mode: effective(r).mode, source: r.own?.mode ? 'workspace' : 'user_default' }
  }

  /**
   * Applies a PUT of the workspace's AI config. The key is kept only for BYOK: a request that sets
   * the mode and ends up managed clears it, and so does a change of provider that brings no new
   * key (a key is for one provider). A key given when the result is not BYOK is refused.
   */
  async updateConfig(workspaceId: string, patch: ConfigPatch): Promise<WorkspaceAiView> {
    const r = await this.mustResolve(workspaceId)
    await this.d.accounts.account(r.userId)
    const cur = r.own ?? { mode: null, provider: null, model: null, api_key_enc: null }
    const pick = <K extends 'mode' | 'provider' | 'model'>(k: K) =>
      patch[k] === undefined ? cur[k] : (patch[k] as (typeof cur)[K])
    const next = { mode: pick('mode'), provider: pick('provider'), model: pick('model') }
    let keyEnc = cur.api_key_enc
    if (patch.provider !== undefined && patch.provider !== cur.provider) keyEnc = null
    const mode = next.mode ?? r.defaults.default_mode
    if (patch.api_key === null) keyEnc = null
    if (typeof patch.api_key === 'string') {
      if (mode !== 'byok') {
        throw new ApiError(
          'VALIDATION_ERROR',
          `api_key is kept only in byok mode; this workspace's mode would be ${mode} (send mode: "byok" with it)`,
        )
      }
      // A key is bound to one provider: pin the one in effect now.
      next.provider ??= r.defaults.default_provider
      keyEnc = this.d.secrets.seal(patch.api_key, workspaceId)
    }
    if (patch.mode !== undefined && mode === 'managed') keyEnc = null
    const row = { ...next, api_key_enc: keyEnc, updated_at: new Date().toISOString() }
    // The whole row from one read: concurrent PUTs each leave a consistent row (the last one).
    await this.d.db
      .insertInto('workspace_ai')
      .values({ workspace_id: workspaceId, ...row })
      .onConflict((oc) => oc.column('workspace_id').doUpdateSet(row))
      .execute()
    await this.notify([workspaceId])
    return this.config(workspaceId)
  }

  async defaults(userId: string): Promise<Defaults> {
    const a = await this.d.accounts.account(userId)
    return {
      default_mode: a.mode,
      default_provider: a.default_provider,
      default_model: a.default_model,
    }
  }

  /** null puts a default back to the built-in one; omitted keeps it. */
  async updateDefaults(userId: string, patch: DefaultsPatch): Promise<Defaults> {
    const before = await this.defaults(userId)
    const value = <T>(v: T | null | undefined, builtin: T, cur: T) =>
      v === undefined ? cur : (v ?? builtin)
    const after: Defaults = {
      default_mode: value(patch.default_mode, BUILTIN_DEFAULTS.mode, before.default_mode),
      default_provider: value(
        patch.default_provider,
        BUILTIN_DEFAULTS.provider,
        before.default_provider,
      ),
      default_model: value(patch.default_model, BUILTIN_DEFAULTS.model, before.default_model),
    }
    await this.d.db
      .updateTable('ai_accounts')
      .set({
        mode: after.default_mode,
        default_provider: after.default_provider,
        default_model: after.default_model,
        updated_at: new Date().toISOString(),
      })
      .where('user_id', '=', userId)
      .execute()
    const inherited = (['mode', 'provider', 'model'] as const).filter(
      (k) => before[`default_${k}`] !== after[`default_${k}`],
    )
    if (inherited.length) await this.notify(await this.inheriting(userId, inherited))
    return after
  }

  /** The user's workspaces that take any of these fields from the user's defaults. */
  private async inheriting(userId: string, fields: readonly ('mode' | 'provider' | 'model')[]) {
    const rows = await this.d.db
      .selectFrom('workspaces as w')
      .leftJoin('workspace_ai as a', 'a.workspace_id', 'w.id')
      .select(['w.id', 'a.mode', 'a.provider', 'a.model'])
      .where('w.user_id', '=', userId)
      .execute()
    return rows.filter((r) => fields.some((f) => r[f] === null)).map((r) => r.id)
  }

  private async notify(workspaceIds: string[]) {
    const hook = this.d.onSettingsChanged
    if (!hook) return
    for (const id of workspaceIds) {
      try {
        await hook(id)
      } catch (err) {
        this.d.log.warn(
          { workspaceId: id, reason: (err as Error).message },
          'AI settings: live update of the VM failed; it applies at the next boot',
        )
      }
    }
  }
}
