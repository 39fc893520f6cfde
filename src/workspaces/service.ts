import type { User } from '../auth/store.ts'
import { ApiError, notFound } from '../http/errors.ts'
import { nameSuffix, newId, nowIso } from '../lib/ids.ts'
import { checkAllocation, checkStart, limitsFor, type Size } from '../limits/service.ts'
import type { DiskOp } from '../db/schema.ts'
import type { NodeClient } from '../node/types.ts'
import { findTemplate, images, templates, type Template } from '../templates/catalog.ts'
import { envVarsSchema, type GetWorkspaceResponse } from './schemas.ts'
import { toVm, type WorkspaceRow, type WorkspaceStore } from './store.ts'

/** Failure codes worth retrying as they are (the cause is transient, not the request). */
// RESUME_INCOMPATIBLE: the failed start already discarded the memory state; a retry boots from disk.
const RETRYABLE = new Set([
  'BOOT_TIMEOUT',
  'VM_CRASHED',
  'OOM_KILLED',
  'NODE_ERROR',
  'VM_LOST',
  'RESUME_INCOMPATIBLE',
])

export const DEFAULT_SIZE: Size = { ram_mb: 512, vcpu_count: 1, disk_size_mb: 3072 }

export interface CreateInput {
  name: string
  image?: string | null
  template_id?: string | null
  ram_mb?: number | null
  vcpu_count?: number | null
  disk_size_mb?: number | null
  env_vars?: Record<string, string> | null
  /** Attached automation (src/automation/); the ids are checked by Deps.checkAttachments. */
  setup_script_ids?: string[] | null
  service_spec_ids?: string[] | null
  catalog_ids?: string[] | null
}

export interface Deps {
  store: WorkspaceStore
  node: NodeClient | null
  nodeId: string
  kick: (id: string) => void
  /** Pushes env, key or egress changes into a running VM. */
  onEnvChanged: (row: WorkspaceRow) => Promise<void>
  /** Where the SSH gateway listens, for each workspace's ssh command. */
  ssh: { host: string; port: number }
  /** Refuses attached setup scripts / service specs that are not the user's (400 naming them). */
  checkAttachments?: (user: User, input: CreateInput) => Promise<void>
}

export class WorkspaceService {
  constructor(private readonly deps: Deps) {}

  describe(row: WorkspaceRow): GetWorkspaceResponse {
    const failure =
      row.status === 'failed' && row.failure_code
        ? {
            code: row.failure_code,
            message: row.failure_reason ?? row.failure_code,
            retryable: RETRYABLE.has(row.failure_code),
            occurred_at: row.updated_at,
            attempts: row.creation_attempts,
          }
        : null
    return { vm: this.view(row), failure }
  }

  view(row: WorkspaceRow) {
    return toVm(row, this.deps.ssh)
  }

  list(user: User) {
    return this.deps.store.listByUser(user.id)
  }

  async get(user: User, id: string): Promise<WorkspaceRow> {
    const row = await this.deps.store.getOwned(user.id, id)
    if (!row) throw notFound('workspace', id)
    return row
  }

  /** `diskOp`: the row starts busy (a fork writing its disk) so nothing provisions it meanwhile. */
  async create(
    user: User,
    input: CreateInput,
    opts: { template?: Template; diskOp?: DiskOp } = {},
  ): Promise<WorkspaceRow> {
    // A fork keeps its source's template_id as a record; only a new workspace takes the template.
    const template = opts.template ?? (opts.diskOp ? undefined : templateFor(input.template_id))
    if (template) input = withTemplate(template, input)
    const image = input.image ?? 'base'
    if (!(images as readonly string[]).includes(image)) {
      throw new ApiError('VALIDATION_ERROR', `image "${image}" is unknown; one of: ${images}`)
    }
    const size: Size = {
      ram_mb: input.ram_mb ?? template?.ram_mb ?? DEFAULT_SIZE.ram_mb,
      vcpu_count: input.vcpu_count ?? template?.vcpu_count ?? DEFAULT_SIZE.vcpu_count,
      disk_size_mb: input.disk_size_mb ?? template?.disk_size_mb ?? DEFAULT_SIZE.disk_size_mb,
    }
    checkMinimums(size)
    checkEnv(input.env_vars ?? {})
    await this.deps.checkAttachments?.(user, input)
    const rows = await this.deps.store.listByUser(user.id)
    checkAllocation(limitsFor(user), rows, size)
    if (rows.some((w) => w.name === input.name)) {
      throw new ApiError('NAME_TAKEN', `you already have a workspace named "${input.name}"`)
    }
    const now = nowIso()
    const row: WorkspaceRow = {
      id: newId('ws'),
      user_id: user.id,
      node_id: this.deps.nodeId,
      name: input.name,
      image,
      template_id: template?.id ?? input.template_id ?? null,
      ...size,
      status: 'provisioned',
      desired_state: 'provisioned',
      version: 1,
      env_vars: JSON.stringify(input.env_vars ?? {}),
      ip_address: null,
      egress_policy: JSON.stringify({ allow: [], deny: [] }),
      disk_op: opts.diskOp ?? null,
      setup_script_ids: JSON.stringify(input.setup_script_ids ?? []),
      service_spec_ids: JSON.stringify(input.service_spec_ids ?? []),
      catalog_ids: JSON.stringify(input.catalog_ids ?? []),
      setup_status: null,
      failure_code: null,
      failure_reason: null,
      creation_attempts: 0,
      creation_started_at: null,
      created_at: now,
      updated_at: now,
    }
    await this.deps.store.insert(row).catch((err: unknown) => {
      // Two concurrent creates with one name: the unique index decides.
      if (String(err).includes('UNIQUE')) {
        throw new ApiError('NAME_TAKEN', `you already have a workspace named "${input.name}"`)
      }
      throw err
    })
    this.deps.kick(row.id)
    return row
  }

  /** create() with a template (its image and floors; see withTemplate) and a generated name. */
  quickDeploy(user: User, input: Omit<CreateInput, 'name'> & { name?: string | null }) {
    const template = input.template_id ? findTemplate(input.template_id) : undefined
    if (!template) throw notFound('template', String(input.template_id))
    return this.create(
      user,
      { ...input, name: input.name ?? `${template.id}-${nameSuffix()}` },
      { template },
    )
  }

  async start(user: User, id: string) {
    const row = await this.get(user, id)
    checkDiskIdle(row)
    if (['running', 'starting', 'provisioning'].includes(row.status)) {
      throw new ApiError('ALREADY_RUNNING', `workspace ${id} is already ${row.status}`)
    }
    if (row.status === 'stopping' || row.status === 'deleting') {
      throw new ApiError('INVALID_STATE', `workspace ${id} is ${row.status}; wait for it to finish`)
    }
    if (!this.deps.node) {
      throw new ApiError(
        'NODE_UNAVAILABLE',
        'no compute node is available to run workspaces on this server (RIGBOX_NODE=none, or the node failed to start: see the server log)',
      )
    }
    checkStart(limitsFor(user), await this.deps.store.listByUser(user.id), row)
    return this.move(row, {
      status: 'starting',
      desired_state: 'running',
      failure_code: null,
      failure_reason: null,
      creation_attempts: row.creation_attempts + 1,
      creation_started_at: row.creation_started_at ?? nowIso(),
    })
  }

  /** Saves memory and device state and ends the VM; `resume` (or `start`) brings it back. */
  async pause(user: User, id: string) {
    const row = await this.get(user, id)
    if (row.status === 'running' && row.desired_state === 'paused') {
      throw new ApiError('INVALID_STATE', `workspace ${id} is already being paused`)
    }
    if (row.status !== 'running' || row.desired_state !== 'running') {
      throw new ApiError(
        'INVALID_STATE',
        `workspace ${id} is ${row.status}; only a running workspace can be paused`,
      )
    }
    // A failure of an earlier pause is history once the next one is asked for.
    return this.move(row, { desired_state: 'paused', failure_code: null, failure_reason: null })
  }

  async resume(user: User, id: string) {
    const row = await this.get(user, id)
    if (row.status !== 'paused') {
      throw new ApiError('INVALID_STATE', `workspace ${id} is ${row.status}, not paused`)
    }
    return this.start(user, id)
  }

  async stop(user: User, id: string) {
    const row = await this.get(user, id)
    if (!['running', 'starting', 'provisioning', 'paused'].includes(row.status)) {
      throw new ApiError('NOT_RUNNING', `workspace ${id} is ${row.status}, not running`)
    }
    return this.move(row, { status: 'stopping', desired_state: 'stopped' })
  }

  async cancel(user: User, id: string) {
    const row = await this.get(user, id)
    if (row.status !== 'starting' && row.status !== 'provisioning') {
      throw new ApiError('INVALID_STATE', `workspace ${id} is ${row.status}: nothing to cancel`)
    }
    return this.move(row, { status: 'stopping', desired_state: 'stopped' })
  }

  async retry(user: User, id: string) {
    const row = await this.get(user, id)
    if (row.status !== 'failed') {
      throw new ApiError('INVALID_STATE', `workspace ${id} is ${row.status}, not failed`)
    }
    if (!this.deps.node) throw new ApiError('NODE_UNAVAILABLE', 'no compute node is available')
    checkStart(limitsFor(user), await this.deps.store.listByUser(user.id), row)
    return this.move(row, {
      status: 'provisioning',
      desired_state: 'running',
      failure_code: null,
      failure_reason: null,
      creation_attempts: row.creation_attempts + 1,
    })
  }

  async remove(user: User, id: string) {
    const row = await this.get(user, id)
    if (row.status === 'deleting') return row
    checkDiskIdle(row)
    return this.move(row, { status: 'deleting', desired_state: 'deleted' })
  }

  async resize(user: User, id: string, input: Partial<Size>) {
    const row = await this.get(user, id)
    checkDiskIdle(row)
    if (row.status !== 'stopped' && row.status !== 'provisioned') {
      throw new ApiError(
        'INVALID_STATE',
        `workspace ${id} is ${row.status}; stop it before resizing (resources change only while stopped)`,
      )
    }
    const size: Size = {
      ram_mb: input.ram_mb ?? row.ram_mb,
      vcpu_count: input.vcpu_count ?? row.vcpu_count,
      disk_size_mb: input.disk_size_mb ?? row.disk_size_mb,
    }
    checkMinimums(size)
    if (size.disk_size_mb < row.disk_size_mb) {
      throw new ApiError(
        'VALIDATION_ERROR',
        `disk_size_mb can only grow (${row.disk_size_mb} → ${size.disk_size_mb} would lose data)`,
      )
    }
    checkAllocation(limitsFor(user), await this.deps.store.listByUser(user.id), size, row)
    return this.move(row, size)
  }

  async setEnv(user: User, id: string, env: Record<string, string>) {
    checkEnv(env)
    const row = await this.get(user, id)
    if (row.status === 'deleting')
      throw new ApiError('INVALID_STATE', `workspace ${id} is deleting`)
    const next = await this.deps.store.transition(row, { env_vars: JSON.stringify(env) })
    if (next.status === 'running') await this.deps.onEnvChanged(next)
    return next
  }

  async setEgress(user: User, id: string, policy: { allow: string[]; deny: string[] }) {
    const row = await this.get(user, id)
    const next = await this.deps.store.transition(row, { egress_policy: JSON.stringify(policy) })
    // Applies to the next connection: the node asks for the policy it holds per VM.
    if (next.status === 'running') await this.deps.onEnvChanged(next)
    return next
  }

  private async move(row: WorkspaceRow, patch: Parameters<WorkspaceStore['transition']>[1]) {
    const next = await this.deps.store.transition(row, patch)
    this.deps.kick(row.id)
    return next
  }
}

/** The template a create names; an unknown one is a bad request (400 naming it). */
function templateFor(id: string | null | undefined): Template | undefined {
  if (id == null) return undefined
  const template = findTemplate(id)
  if (!template) {
    const known = templates.map((t) => t.id).join(', ')
    throw new ApiError('VALIDATION_ERROR', `template_id "${id}" is unknown; one of: ${known}`)
  }
  return template
}

/**
 * A template's image, and its resource floors: missing sizes take the template's, lower ones are
 * raised to them, since the template's software does not fit in less.
 */
function withTemplate(template: Template, input: CreateInput): CreateInput {
  if (template.coming_soon) {
    throw new ApiError('BAD_REQUEST', `template ${template.id} is not deployable yet`)
  }
  if (input.image != null && input.image !== template.image) {
    throw new ApiError(
      'VALIDATION_ERROR',
      `template ${template.id} runs on image "${template.image}", not "${input.image}"; leave image out`,
    )
  }
  const floor = (v: number | null | undefined, min: number) => Math.max(v ?? min, min)
  return {
    ...input,
    template_id: template.id,
    image: template.image,
    ram_mb: floor(input.ram_mb, template.ram_mb),
    vcpu_count: floor(input.vcpu_count, template.vcpu_count),
    disk_size_mb: floor(input.disk_size_mb, template.disk_size_mb),
  }
}

const DISK_OPS = {
  snapshot: 'a snapshot is being taken',
  restore: 'a snapshot is being restored',
  fork: 'its disk is being forked from a snapshot',
}

/** Nothing starts, resizes or deletes a workspace while its disk is being copied. */
export function checkDiskIdle(row: WorkspaceRow) {
  if (row.disk_op) {
    throw new ApiError(
      'INVALID_STATE',
      `workspace ${row.id} is busy: ${DISK_OPS[row.disk_op]}; try again when it is done`,
    )
  }
}

/**
 * Every route that takes env declares envVarsSchema; checking here too means a caller that
 * reaches the service another way (a new route, the bridge) cannot store an env that never boots.
 */
function checkEnv(env: Record<string, string>) {
  const checked = envVarsSchema.safeParse(env)
  if (!checked.success) {
    const why = checked.error.issues.map((i) => [...i.path, i.message].join(': ')).join('; ')
    throw new ApiError('VALIDATION_ERROR', `invalid env_vars: ${why}`)
  }
}

function checkMinimums(size: Size) {
  if (size.ram_mb < 256) throw new ApiError('VALIDATION_ERROR', 'ram_mb must be at least 256')
  if (size.vcpu_count < 1) throw new ApiError('VALIDATION_ERROR', 'vcpu_count must be at least 1')
  if (size.disk_size_mb < 2048) {
    throw new ApiError(
      'VALIDATION_ERROR',
      'disk_size_mb must be at least 2048 (the image needs 2 GiB)',
    )
  }
}
