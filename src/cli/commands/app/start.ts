import { appActionCommand } from '../../apps.ts'

export default appActionCommand('start', "start the app's service in its workspace and route it")
