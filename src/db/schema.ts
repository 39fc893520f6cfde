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
  /** JSON id lists: the user's setup scripts and service specs attached to the workspace. */
  setup_script_ids: string
  service_spec_ids: string
  /** JSON id list of catalog apps to install once the workspace first runs (quick deploy). */
  catalog_ids: string
  /** JSON SetupStatus (src/automation/): the last start's script runs and service starts. */
  setup_status: string | null
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
  /** The systemd unit in the VM that serves the app (start/stop/restart act on it); null: none. */
  service_unit: string | null
  /** JSON ParamSpec[] the app declares. */
  params: string
  /** JSON {key: value}; sensitive values are sealed with the SecretBox (src/ai/secrets.ts). */
  param_values: string
  /** JSON list of app names in the same workspace this app needs first. */
  depends_on: string
  created_at: string
  updated_at: string
}

export interface SetupScriptsTable {
  id: string
  user_id: string
  name: string
  /** A bash script, run as `developer` (with sudo) in /home/developer. */
  content: string
  run_on: 'first_boot' | 'every_start'
  script_order: number
  created_at: string
  updated_at: string
}

export interface ServiceSpecsTable {
  id: string
  user_id: string
  /** The unit is `rigbox-svc-<name>.service`. */
  name: string
  exec_start: string
  /** JSON {KEY: value}, on top of the workspace env. */
  env_vars: string
  environment_file: string | null
  restart_policy: 'always' | 'on-failure' | 'no'
  auto_enable: number
  /** Bash run once before the unit is first started (as developer, in /home/developer). */
  setup_script: string
  created_at: string
  updated_at: string
}

export interface AppLogSourcesTable {
  id: string
  app_id: string
  source_type: 'systemd_unit' | 'file_path' | 'docker_container'
  source_ref: string
  display_name: string | null
  is_primary: number
  created_at: string
  updated_at: string
}

/** An async job in a workspace: a tool or a catalog app being installed. */
export interface WorkspaceJobsTable {
  id: string
  workspace_id: string
  user_id: string
  kind: 'tool_install' | 'app_install'
  /** The tool id or catalog id. */
  target: string
  app_id: string | null
  status: 'queued' | 'running' | 'succeeded' | 'failed'
  exit_code: number | null
  stdout: string | null
  stderr: string | null
  created_at: string
  updated_at: string
}

/** What the router counted for one app in one minute (src/apps/metrics.ts). */
export interface AppMetricsTable {
  app_id: string
  /** Unix seconds at the minute's start. */
  minute: number
  requests: number
  errors_5xx: number
  bytes_out: number
  /** JSON {"2xx": n, ...}. */
  status_classes: string
  /** JSON counts per latency bucket (bounds in src/apps/metrics.ts). */
  latency_buckets: string
  /** JSON list of Host names seen. */
  hosts: string
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
  setup_scripts: SetupScriptsTable
  service_specs: ServiceSpecsTable
  app_log_sources: AppLogSourcesTable
  workspace_jobs: WorkspaceJobsTable
  app_metrics: AppMetricsTable
}
