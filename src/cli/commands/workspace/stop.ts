import { lifecycleCommand } from '../../workspaces.ts'

export default lifecycleCommand({
  verb: 'stop',
  until: 'stopped',
  doing: 'stopping',
  description: 'shut a workspace down (its disk is kept) and wait until stopped',
})
