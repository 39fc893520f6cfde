import type { Config } from '../config/config.ts'
import type { NodeClient } from './types.ts'

export async function createLocalNode(_config: Config): Promise<NodeClient> {
  throw new Error('the VM runtime is not wired in yet')
}
