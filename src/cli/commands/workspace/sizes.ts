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

export type CreateOpts = SizeOpts & { image?: string; template?: string }

/** `--image/--template` options and a create (plain or from a template), for `new` and `spawn`. */
export const createOptions = (cmd: Command) =>
  sizeOptions(cmd)
    .option('--image <image>', 'base or dev')
    .option('--template <id>', 'create from a template (its floors raise lower sizes)')

export async function createWorkspace(api: RigboxClient, name: string, o: CreateOpts): Promise<Vm> {
  if (o.template) {
    const body = { template_id: o.template, name, ...sizeBody(o) }
    return unwrap(await api.POST('/api/v1/quick-deploy', { body })).workspace
  }
  const body = { name, image: o.image, ...sizeBody(o) }
  return unwrap(await api.POST('/api/v1/workspaces', { body })).vm
}
