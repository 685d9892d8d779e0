// Every command, view, context key and URI scheme id, declared once.
export const Commands = {
  delegateTask: 'cowork.delegateTask',
  stopTask: 'cowork.stopTask',
  acceptAll: 'cowork.acceptAll',
  discardAll: 'cowork.discardAll',
  setApiKey: 'cowork.setApiKey',
  showLog: 'cowork.showLog',
  startVm: 'cowork.startVm',
  stopVm: 'cowork.stopVm',
  showEgressLog: 'cowork.showEgressLog',
  cleanUp: 'cowork.cleanUp',
  checkSetup: 'cowork.checkSetup',
  deleteTask: 'cowork.deleteTask',
  /** a task whose VM stopped unexpectedly: boot it again on the same session disk */
  restartTaskVm: 'cowork.restartTaskVm',
  /** the task UI in an editor tab (a WebviewPanel), wide */
  openTaskInEditor: 'cowork.openTaskInEditor',
  acceptFile: 'cowork.review.acceptFile',
  discardFile: 'cowork.review.discardFile',
  openTask: 'cowork.review.openTask',
  /** direct mode: put the person's version of a file back */
  revertFile: 'cowork.review.revertFile',
  /** partial accept: the hunks touched by the selection in the diff editor */
  acceptSelectedRanges: 'cowork.review.acceptSelectedRanges',
  /** internal: the panel's "run a command in the VM" smoke check, hidden from the palette */
  runInVm: 'cowork.internal.runInVm',
  /** internal: the SCM resource click */
  openDiff: 'cowork.internal.openDiff',
  /** internal: the settings that apply and what a workspace tried to set (tests), hidden from the palette */
  effectiveSettings: 'cowork.internal.effectiveSettings',
} as const;
export type CommandId = (typeof Commands)[keyof typeof Commands];

export const Views = {
  container: 'cowork',
  panel: 'cowork.panel',
} as const;

export const ContextKeys = {
  vmState: 'cowork.vmState',
} as const;

export const SECRET_API_KEY = 'cowork.anthropicApiKey';
export const LOG_CHANNEL_NAME = 'Cowork';
