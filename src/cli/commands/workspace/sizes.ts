import { InvalidArgumentError, type Command } from 'commander'
import { unwrap, type RigboxClient, type Vm } from '../../../client/index.ts'

export const int = (v: string) => {
  const n = Number(v)
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer')
  return n
}

/** --ram/--vcpus/--disk, shared by `new`, `spawn` and `resize`. */
export const sizeOptions = (cmd: Command) =>
  cmd
    .option('--ram <mb>', 'RAM in MiB', int)
    .option('--vcpus <n>', 'virtual CPUs', int)
    .option('--disk <mb>', 'disk size in MiB', int)

export interface SizeOpts {
  ram?: number
  vcpus?: number
  disk?: number
}
export const sizeBody = (o: SizeOpts) => ({
  ram_mb: o.ram,
  vcpu_count: o.vcpus,
  disk_size_mb: o.disk,
})

export type CreateOpts = SizeOpts & {
  image?: string
  template?: string
  setupScript?: string[]
  serviceSpec?: string[]
}

const collect = (value: string, previous: string[] = []) => [...previous, value]

/** `--image/--template` options and a create (plain or from a template), for `new` and `spawn`. */
export const createOptions = (cmd: Command) =>
  sizeOptions(cmd)
    .option('--image <image>', 'base or dev')
    .option(
      '--template <id>',
      'create from a template: its image, floors, scripts, services and apps (`rig template ls`)',
    )
    .option('--setup-script <id>', 'attach a setup script (repeatable)', collect)
    .option('--service-spec <id>', 'attach a service spec (repeatable)', collect)

export async function createWorkspace(api: RigboxClient, name: string, o: CreateOpts): Promise<Vm> {
  const attached = { setup_script_ids: o.setupScript, service_spec_ids: o.serviceSpec }
  if (o.template) {
    // Quick deploy rather than POST /workspaces with template_id: it also creates the
    // template's expected apps, so the workspace comes up serving them.
    const body = { template_id: o.template, name, ...sizeBody(o), ...attached }
    const res = unwrap(await api.POST('/api/v1/quick-deploy', { body }))
    for (const app of res.expected_apps) process.stderr.write(`app ${app.name}: ${app.url}\n`)
    return res.workspace
  }
  const body = { name, image: o.image, ...sizeBody(o), ...attached }
  return unwrap(await api.POST('/api/v1/workspaces', { body })).vm
}
