import { lifecycleCommand } from '../../workspaces.ts'

export default lifecycleCommand({
  verb: 'start',
  until: 'running',
  doing: 'starting',
  description: 'boot a workspace and wait until it is running',
})
