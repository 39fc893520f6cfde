import { appActionCommand } from '../../apps.ts'

export default appActionCommand('stop', "stop the app's service (the process ends) and its route")
