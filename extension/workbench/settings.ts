import * as vscode from 'vscode';
import { parseSettings, SETTING_KEYS, type SettingsResult } from '../config/settings';

export function readSettings(): SettingsResult {
  const cfg = vscode.workspace.getConfiguration('cowork');
  const raw: Record<string, unknown> = {};
  for (const key of SETTING_KEYS) raw[key] = cfg.get(key);
  return parseSettings(raw);
}
