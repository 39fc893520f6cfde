import type { Command } from 'commander'
import { unwrap, type RigboxClient, type Vm } from '../client/index.ts'
import { action } from './action.ts'
import { apiClient, CliError, print, progress, table } from './context.ts'

/** A workspace by id (`ws-…`) or by name. */
export async function resolveWorkspace(api: RigboxClient, ref: string): Promise<Vm> {
  if (/^ws-[a-z0-9]{8}$/.test(ref)) {
    return unwrap(await api.GET('/api/v1/workspaces/{id}', { params: { path: { id: ref } } })).vm
  }
  const { vms } = unwrap(await api.GET('/api/v1/workspaces'))
  const vm = vms.find((v) => v.name === ref)
  if (!vm) throw new CliError(`no workspace named or with id "${ref}"`)
  return vm
}

export function workspaceTable(vms: Vm[]) {
  return table(
    ['ID', 'NAME', 'STATUS', 'IMAGE', 'RAM', 'VCPU', 'DISK', 'IP'],
    vms.map((v) => [
      v.id,
      v.name,
      v.status,
      v.image,
      `${v.ram_mb}M`,
      v.vcpu_count,
      `${v.disk_size_mb}M`,
      v.ip_address,
    ]),
  )
}

/** Polls until the workspace reaches one of `targets`, showing each status on the way. */
export async function waitFor(
  api: RigboxClient,
  id: string,
  targets: string[],
  label: string,
  timeoutMs = 600_000,
): Promise<Vm> {
  const bar = progress(label)
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const { vm, failure } = unwrap(
      await api.GET('/api/v1/workspaces/{id}', { params: { path: { id } } }),
    )
    bar.update(vm.status)
    if (targets.includes(vm.status)) {
      bar.done(`${label}: ${vm.status}`)
      return vm
    }
    if (vm.status === 'failed') {
      bar.done(`${label}: failed`)
      throw new CliError(
        `workspace ${id} failed: ${failure?.code ?? vm.failure_code} ${failure?.message ?? ''}`,
      )
    }
    if (targets.includes('paused') && vm.failure_code === 'PAUSE_FAILED') {
      bar.done(`${label}: called off`)
      throw new CliError(`workspace ${id} was not paused: ${vm.failure_reason ?? ''}`)
    }
    if (Date.now() > deadline) throw new CliError(`timed out waiting for ${id} to be ${targets}`)
    await new Promise((r) => setTimeout(r, 1000))
  }
}

type LifecycleVerb = 'start' | 'stop' | 'pause' | 'resume'

function lifecycle(api: RigboxClient, id: string, verb: LifecycleVerb): Promise<Vm> {
  const path = `/api/v1/workspaces/{id}/${verb}` as '/api/v1/workspaces/{id}/start'
  return api.POST(path, { params: { path: { id } } }).then((r) => unwrap(r).vm)
}

/** A lifecycle request, then progress (labelled from the answer) until the workspace is `until`. */
export async function lifecycleAndWait(
  api: RigboxClient,
  id: string,
  verb: LifecycleVerb,
  until: string,
  label: (vm: Vm) => string,
): Promise<Vm> {
  const vm = await lifecycle(api, id, verb)
  return waitFor(api, id, [until], label(vm))
}

/**
 * `rig workspace <verb> <ws>`: one lifecycle request, then (unless `--no-wait`) progress until the
 * workspace reaches `until`.
 */
export function lifecycleCommand(o: {
  verb: LifecycleVerb
  until: string
  doing: string
  description: string
}) {
  return (parent: Command) =>
    parent
      .command(`${o.verb} <workspace>`)
      .description(o.description)
      .option('--no-wait', `return as soon as the ${o.verb} is accepted`)
      .action(
        action(async (cmd, ref: string, opts: { wait: boolean }) => {
          const api = apiClient()
          const { id, name } = await resolveWorkspace(api, ref)
          let vm = await lifecycle(api, id, o.verb)
          if (opts.wait) vm = await waitFor(api, id, [o.until], `${o.doing} ${name}`)
          print(cmd, vm, () => workspaceTable([vm]))
        }),
      )
}
