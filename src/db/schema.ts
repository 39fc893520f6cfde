import type { Generated } from 'kysely'

export interface UsersTable {
  id: string
  email: string
  name: string | null
  plan: 'free' | 'pro'
  is_admin: Generated<number>
  created_at: string
}

export interface ApiKeysTable {
  id: string
  user_id: string
  name: string
  /** The first characters of the key, shown in listings so a person can tell keys apart. */
  prefix: string
  key_hash: string
  created_at: string
  last_used_at: string | null
}

export type DesiredState = 'provisioned' | 'running' | 'paused' | 'stopped' | 'deleted'

/** Work on a stopped workspace's disk that nothing may start, resize or delete under. */
export type DiskOp = 'snapshot' | 'restore' | 'fork'

export interface WorkspacesTable {
  id: string
  user_id: string
  node_id: string
  name: string
  image: string
  template_id: string | null
  ram_mb: number
  vcpu_count: number
  disk_size_mb: number
  status: string
  desired_state: DesiredState
  /** Bumped by every transition; updates are fenced on it so stale writers lose. */
  version: number
  env_vars: string
  ip_address: string | null
  /** JSON `{"allow": [...], "deny": [...]}` of host patterns for the egress proxy. */
  egress_policy: string
  disk_op: DiskOp | null
  failure_code: string | null
  failure_reason: string | null
  creation_attempts: number
  creation_started_at: string | null
  created_at: string
  updated_at: string
}

export interface AppsTable {
  id: string
  user_id: string
  workspace_id: string
  node_id: string
  name: string
  /** Globally unique DNS label: the app answers at `<subdomain>.<domain>`. */
  subdomain: string
  port: number
  protocol: string
  visibility: 'public' | 'private' | 'privileged'
  allowed_emails: string
  /** active = routed; inactive = route switched off (the service in the VM keeps running). */
  status: 'active' | 'inactive' | 'installing' | 'error'
  description: string | null
  metadata: string
  managed: number
  system_tags: string
  app_kind: string
  created_at: string
  updated_at: string
}

export interface SshKeysTable {
  id: string
  user_id: string
  name: string
  public_key: string
  fingerprint: string
  created_at: string
}

export interface SnapshotsTable {
  id: string
  user_id: string
  workspace_id: string
  node_id: string
  name: string
  /** `creating` rows are invisible to the API: a snapshot shows once its data is complete. */
  state: 'creating' | 'ready'
  /** Host bytes allocated to the snapshot's file (sparse). */
  size_bytes: number
  created_at: string
}

/** A login link (used up by its first visit) or a router session; see src/apps/logins.ts. */
export interface AppLoginsTable {
  id: string
  user_id: string
  /** The API key that made the link: revoking it ends the link and its sessions. */
  key_id: string
  subdomain: string
  expires_at: string
  created_at: string
}

export type AiMode = 'managed' | 'byok' | 'off'
export type AiProvider = 'openai' | 'anthropic' | 'google'

/** A user's AI settings and this period's credits, in micro-credits (src/ai/credits.ts). */
export interface AiAccountsTable {
  user_id: string
  mode: AiMode
  default_provider: AiProvider
  default_model: string
  /** Start of the current monthly period (ISO); the allowance renews when a month has passed. */
  period_start: string
  /** The plan's monthly allowance, as of the period's start. */
  allowance_micro: number
  /** Granted by an administrator: kept across periods until used. */
  granted_micro: number
  /** Charged this period. */
  used_micro: number
  /** Held by calls in flight (an upper bound each), settled when they end. */
  reserved_micro: number
  updated_at: string
}

/** A workspace's own AI settings; null fields fall back to the owner's (ai_accounts). */
export interface WorkspaceAiTable {
  workspace_id: string
  mode: AiMode | null
  provider: AiProvider | null
  model: string | null
  /** BYOK key, AES-256-GCM under the master key (src/ai/secrets.ts); never returned. */
  api_key_enc: string | null
  updated_at: string
}

/** One proxied AI call (the ledger). */
export interface AiUsageTable {
  id: string
  user_id: string
  workspace_id: string
  workspace_name: string
  /** managed (charged), byok (recorded, not charged), off (a refused call). */
  mode: AiMode
  provider: string
  model: string
  /** `chat.completions`, `embeddings`, `messages`. */
  endpoint: string
  input_tokens: number
  output_tokens: number
  credits_micro: number
  /** ok, error (upstream failed), cancelled (client hung up; charged for what it got), refused. */
  status: 'ok' | 'error' | 'cancelled' | 'refused'
  http_status: number
  duration_ms: number
  created_at: string
}

export interface Database {
  users: UsersTable
  api_keys: ApiKeysTable
  workspaces: WorkspacesTable
  apps: AppsTable
  ssh_keys: SshKeysTable
  snapshots: SnapshotsTable
  app_login_links: AppLoginsTable
  app_sessions: AppLoginsTable
  ai_accounts: AiAccountsTable
  workspace_ai: WorkspaceAiTable
  ai_usage: AiUsageTable
}
