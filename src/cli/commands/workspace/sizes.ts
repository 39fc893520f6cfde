import { InvalidArgumentError, type Command } from 'commander'

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
