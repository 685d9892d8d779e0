import type * as vscode from 'vscode';
import type { Logger } from '../session/workspaceVm';

/** Adapts the LogOutputChannel to the engine's Logger. The API key is never passed to a logger. */
export function channelLogger(channel: vscode.LogOutputChannel): Logger {
  return {
    trace: (m) => channel.trace(m),
    debug: (m) => channel.debug(m),
    info: (m) => channel.info(m),
    warn: (m) => channel.warn(m),
    error: (m) => channel.error(m),
  };
}
