/**
 * The seams between the parts of the AI feature (docs/ai.md):
 *
 * - credits.ts + usage.ts: the balance (reserve before a call, settle after) and the ledger;
 * - settings.ts + secrets.ts: who may call and how (mode, provider, model, the BYOK key);
 * - proxy/: the `/v1/*` routes on the VM bridge, which forward, meter and charge;
 * - routes.ts: the API's AI operations; the VM's env comes from vmEnv().
 *
 * Every micro-credit figure is an integer: 1 credit = 1,000,000 micro-credits ≈ $0.01 of upstream
 * cost, so 1 micro-credit = $0.00000001.
 */
import type { AiMode, AiProvider } from '../db/schema.ts'

export type { AiMode, AiProvider } from '../db/schema.ts'

export const MICRO_PER_CREDIT = 1_000_000
/** Micro-credits per US dollar of upstream cost. */
export const MICRO_PER_USD = 100 * MICRO_PER_CREDIT

/** How one call from a workspace is to be served, as its settings say right now. */
export interface CallSettings {
  userId: string
  workspaceId: string
  workspaceName: string
  /** The effective mode: the workspace's own, else its owner's. */
  mode: AiMode
  /** For byok: the provider and the decrypted key (in memory only, for this call). */
  provider: AiProvider | null
  apiKey: string | null
  /** The workspace's (else the owner's) default model, used when a request names none. */
  model: string | null
}

/** Resolves a workspace's settings for a call (the workspace id comes from the VM's channel). */
export interface SettingsSource {
  forCall(workspaceId: string): Promise<CallSettings | null>
}

/** Credits held for one call in flight. */
export interface Reservation {
  userId: string
  micro: number
}

export interface CreditLedger {
  /** What the user may spend right now, in micro-credits (the proxy sizes max_tokens by it). */
  available(userId: string): Promise<number>
  /**
   * Holds `micro` of the user's balance for a call, atomically: concurrent calls never take the
   * balance below zero. Throws ApiError CREDITS_EXHAUSTED (402) when the balance cannot cover it.
   */
  reserve(userId: string, micro: number): Promise<Reservation>
  /** Releases the hold and charges what the call really cost (at most what was held). */
  settle(reservation: Reservation, chargedMicro: number): Promise<void>
}

export interface UsageRecord {
  userId: string
  workspaceId: string
  workspaceName: string
  /** off: a refused call of a workspace whose AI is off (never charged). */
  mode: AiMode
  provider: string
  model: string
  endpoint: 'chat.completions' | 'embeddings' | 'messages'
  inputTokens: number
  outputTokens: number
  creditsMicro: number
  status: 'ok' | 'error' | 'cancelled' | 'refused'
  httpStatus: number
  durationMs: number
}

export interface UsageLedger {
  record(row: UsageRecord): Promise<void>
}
