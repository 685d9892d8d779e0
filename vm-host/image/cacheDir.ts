import * as os from 'node:os';
import * as path from 'node:path';

/** The per-user cache directory for guest images (COWORK_CACHE_DIR overrides it, e.g. in tests). */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env, platform = process.platform): string {
  if (env.COWORK_CACHE_DIR) return env.COWORK_CACHE_DIR;
  const home = os.homedir();
  switch (platform) {
    case 'darwin':
      return path.join(home, 'Library', 'Caches', 'cowork-vscode');
    case 'win32':
      return path.join(env.LOCALAPPDATA ?? path.join(home, 'AppData', 'Local'), 'cowork-vscode', 'Cache');
    default:
      return path.join(env.XDG_CACHE_HOME ?? path.join(home, '.cache'), 'cowork-vscode');
  }
}
