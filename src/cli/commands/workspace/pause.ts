import { lifecycleCommand } from '../../workspaces.ts'

export default lifecycleCommand({
  verb: 'pause',
  until: 'paused',
  doing: 'pausing',
  description: "save a running workspace's memory and free its RAM and CPU; wait until paused",
})
