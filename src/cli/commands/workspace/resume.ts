import { lifecycleCommand } from '../../workspaces.ts'

export default lifecycleCommand({
  verb: 'resume',
  until: 'running',
  doing: 'resuming',
  description: 'bring a paused workspace back, every process where it was; wait until running',
})
