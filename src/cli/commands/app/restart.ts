import { appActionCommand } from '../../apps.ts'

export default appActionCommand('restart', "restart the app's service (e.g. after a change)")
