import { type Kysely, type Migration, type MigrationProvider, sql } from 'kysely'

/** Migrations live in code so the bundled server carries them; names sort in apply order. */
const migrations: Record<string, Migration> = {
  '0001_accounts_and_workspaces': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('users')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('email', 'text', (c) => c.notNull().unique())
        .addColumn('name', 'text')
        .addColumn('plan', 'text', (c) => c.notNull())
        .addColumn('is_admin', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute()
      await db.schema
        .createTable('api_keys')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('prefix', 'text', (c) => c.notNull())
        .addColumn('key_hash', 'text', (c) => c.notNull().unique())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('last_used_at', 'text')
        .execute()
      await db.schema.createIndex('api_keys_user').on('api_keys').column('user_id').execute()
      await db.schema
        .createTable('workspaces')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('node_id', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('image', 'text', (c) => c.notNull())
        .addColumn('template_id', 'text')
        .addColumn('ram_mb', 'integer', (c) => c.notNull())
        .addColumn('vcpu_count', 'integer', (c) => c.notNull())
        .addColumn('disk_size_mb', 'integer', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('desired_state', 'text', (c) => c.notNull())
        .addColumn('version', 'integer', (c) => c.notNull().defaultTo(1))
        .addColumn('env_vars', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('ip_address', 'text')
        .addColumn('failure_code', 'text')
        .addColumn('failure_reason', 'text')
        .addColumn('creation_attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('creation_started_at', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addUniqueConstraint('workspaces_user_name', ['user_id', 'name'])
        .execute()
      await db.schema.createIndex('workspaces_user').on('workspaces').column('user_id').execute()
      await sql`select 1`.execute(db)
    },
  },
  '0002_apps_ssh_keys_egress': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('apps')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('workspace_id', 'text', (c) =>
          c.notNull().references('workspaces.id').onDelete('cascade'),
        )
        .addColumn('node_id', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('subdomain', 'text', (c) => c.notNull().unique())
        .addColumn('port', 'integer', (c) => c.notNull())
        .addColumn('protocol', 'text', (c) => c.notNull())
        .addColumn('visibility', 'text', (c) => c.notNull())
        .addColumn('allowed_emails', 'text', (c) => c.notNull().defaultTo('[]'))
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('description', 'text')
        .addColumn('metadata', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('managed', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('system_tags', 'text', (c) => c.notNull().defaultTo('[]'))
        .addColumn('app_kind', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute()
      await db.schema.createIndex('apps_user').on('apps').column('user_id').execute()
      await db.schema.createIndex('apps_workspace').on('apps').column('workspace_id').execute()
      await db.schema
        .createTable('ssh_keys')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('public_key', 'text', (c) => c.notNull())
        .addColumn('fingerprint', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addUniqueConstraint('ssh_keys_user_fingerprint', ['user_id', 'fingerprint'])
        .execute()
      await db.schema
        .alterTable('workspaces')
        .addColumn('egress_policy', 'text', (c) => c.notNull().defaultTo('{"allow":[],"deny":[]}'))
        .execute()
    },
  },
  '0003_snapshots': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('snapshots')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('workspace_id', 'text', (c) =>
          c.notNull().references('workspaces.id').onDelete('cascade'),
        )
        .addColumn('node_id', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('size_bytes', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute()
      await db.schema.createIndex('snapshots_user').on('snapshots').column('user_id').execute()
      await db.schema
        .createIndex('snapshots_workspace')
        .on('snapshots')
        .column('workspace_id')
        .execute()
      await db.schema.alterTable('workspaces').addColumn('disk_op', 'text').execute()
    },
  },
  '0004_app_logins': {
    async up(db: Kysely<unknown>) {
      // Login links (used up by their first visit) and the router sessions they start; both
      // stand on the API key that made the link and go with it.
      for (const table of ['app_login_links', 'app_sessions']) {
        await db.schema
          .createTable(table)
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('user_id', 'text', (c) =>
            c.notNull().references('users.id').onDelete('cascade'),
          )
          .addColumn('key_id', 'text', (c) =>
            c.notNull().references('api_keys.id').onDelete('cascade'),
          )
          .addColumn('subdomain', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .execute()
        await db.schema.createIndex(`${table}_key`).on(table).column('key_id').execute()
        await db.schema.createIndex(`${table}_expiry`).on(table).column('expires_at').execute()
      }
    },
  },
  '0005_ai': {
    async up(db: Kysely<unknown>) {
      // One row per user, made on first use: AI mode and defaults, and the credit balance of the
      // current monthly period (micro-credits; src/ai/credits.ts).
      await db.schema
        .createTable('ai_accounts')
        .addColumn('user_id', 'text', (c) =>
          c.primaryKey().references('users.id').onDelete('cascade'),
        )
        .addColumn('mode', 'text', (c) => c.notNull().defaultTo('managed'))
        .addColumn('default_provider', 'text', (c) => c.notNull().defaultTo('openai'))
        .addColumn('default_model', 'text', (c) => c.notNull().defaultTo('rigbox/default'))
        .addColumn('period_start', 'text', (c) => c.notNull())
        .addColumn('allowance_micro', 'integer', (c) => c.notNull())
        .addColumn('granted_micro', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('used_micro', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('reserved_micro', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute()
      // A workspace's own AI settings; absent fields fall back to the owner's defaults.
      await db.schema
        .createTable('workspace_ai')
        .addColumn('workspace_id', 'text', (c) =>
          c.primaryKey().references('workspaces.id').onDelete('cascade'),
        )
        .addColumn('mode', 'text')
        .addColumn('provider', 'text')
        .addColumn('model', 'text')
        .addColumn('api_key_enc', 'text')
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute()
      // The ledger: one row per proxied call. Kept when the workspace goes (its name with it).
      await db.schema
        .createTable('ai_usage')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('workspace_id', 'text', (c) => c.notNull())
        .addColumn('workspace_name', 'text', (c) => c.notNull())
        .addColumn('mode', 'text', (c) => c.notNull())
        .addColumn('provider', 'text', (c) => c.notNull())
        .addColumn('model', 'text', (c) => c.notNull())
        .addColumn('endpoint', 'text', (c) => c.notNull())
        .addColumn('input_tokens', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('output_tokens', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('credits_micro', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('http_status', 'integer', (c) => c.notNull())
        .addColumn('duration_ms', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute()
      await db.schema
        .createIndex('ai_usage_user_time')
        .on('ai_usage')
        .columns(['user_id', 'created_at'])
        .execute()
      await db.schema
        .createIndex('ai_usage_workspace_time')
        .on('ai_usage')
        .columns(['workspace_id', 'created_at'])
        .execute()
    },
  },
  // Automation (setup scripts, service specs, apps as units, log sources, params, jobs, app
  // metrics). Attachments are JSON id lists on the workspace, as the API shows them.
  '0006_automation': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('setup_scripts')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('content', 'text', (c) => c.notNull())
        .addColumn('run_on', 'text', (c) => c.notNull())
        .addColumn('script_order', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute()
      await db.schema
        .createIndex('setup_scripts_user')
        .on('setup_scripts')
        .column('user_id')
        .execute()
      await db.schema
        .createTable('service_specs')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('exec_start', 'text', (c) => c.notNull())
        .addColumn('env_vars', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('environment_file', 'text')
        .addColumn('restart_policy', 'text', (c) => c.notNull())
        .addColumn('auto_enable', 'integer', (c) => c.notNull().defaultTo(1))
        .addColumn('setup_script', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addUniqueConstraint('service_specs_user_name', ['user_id', 'name'])
        .execute()
      await db.schema
        .alterTable('workspaces')
        .addColumn('setup_script_ids', 'text', (c) => c.notNull().defaultTo('[]'))
        .execute()
      await db.schema
        .alterTable('workspaces')
        .addColumn('service_spec_ids', 'text', (c) => c.notNull().defaultTo('[]'))
        .execute()
      await db.schema
        .alterTable('workspaces')
        .addColumn('catalog_ids', 'text', (c) => c.notNull().defaultTo('[]'))
        .execute()
      await db.schema.alterTable('workspaces').addColumn('setup_status', 'text').execute()
      await db.schema.alterTable('apps').addColumn('service_unit', 'text').execute()
      await db.schema
        .alterTable('apps')
        .addColumn('params', 'text', (c) => c.notNull().defaultTo('[]'))
        .execute()
      await db.schema
        .alterTable('apps')
        .addColumn('param_values', 'text', (c) => c.notNull().defaultTo('{}'))
        .execute()
      await db.schema
        .alterTable('apps')
        .addColumn('depends_on', 'text', (c) => c.notNull().defaultTo('[]'))
        .execute()
      await db.schema
        .createTable('app_log_sources')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('app_id', 'text', (c) => c.notNull().references('apps.id').onDelete('cascade'))
        .addColumn('source_type', 'text', (c) => c.notNull())
        .addColumn('source_ref', 'text', (c) => c.notNull())
        .addColumn('display_name', 'text')
        .addColumn('is_primary', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute()
      await db.schema
        .createIndex('app_log_sources_app')
        .on('app_log_sources')
        .column('app_id')
        .execute()
      await db.schema
        .createTable('workspace_jobs')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('workspace_id', 'text', (c) =>
          c.notNull().references('workspaces.id').onDelete('cascade'),
        )
        .addColumn('user_id', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('target', 'text', (c) => c.notNull())
        .addColumn('app_id', 'text')
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('exit_code', 'integer')
        .addColumn('stdout', 'text')
        .addColumn('stderr', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute()
      await db.schema
        .createIndex('workspace_jobs_target')
        .on('workspace_jobs')
        .columns(['workspace_id', 'kind', 'target'])
        .execute()
      await db.schema
        .createTable('app_metrics')
        .addColumn('app_id', 'text', (c) => c.notNull().references('apps.id').onDelete('cascade'))
        .addColumn('minute', 'integer', (c) => c.notNull())
        .addColumn('requests', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('errors_5xx', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('bytes_out', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('status_classes', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('latency_buckets', 'text', (c) => c.notNull().defaultTo('[]'))
        .addColumn('hosts', 'text', (c) => c.notNull().defaultTo('[]'))
        .addPrimaryKeyConstraint('app_metrics_pk', ['app_id', 'minute'])
        .execute()
    },
  },
}

export const migrationProvider: MigrationProvider = {
  getMigrations: async () => migrations,
}
