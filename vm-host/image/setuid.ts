// The guest image must not gain a setuid/setgid program unnoticed: a richer toolbox (or a recipe
// change) that brings one in fails the build unless the recipe's setuidAllowList names it. The
// check reads the packed squashfs itself (rdsquashfs --describe), so what is checked is what boots.
// Directories are skipped: a setgid directory (/var/mail, /var/local) only sets the group of new
// files, it grants nothing.
import { spawn } from 'node:child_process';
import { VmHostError } from '../errors';
import { requireTools } from '../hostTools';

export interface PrivilegedEntry {
  /** absolute path inside the image */
  readonly path: string;
  /** permission bits, e.g. 0o4755 */
  readonly mode: number;
}

const SETID_BITS = 0o6000;

/**
 * Entries with a setuid or setgid bit in `rdsquashfs --describe` output, directories excepted.
 * A line is `type path mode uid gid [...]`; a path with spaces is double-quoted (backslash escapes).
 */
export function parseSetidEntries(describe: string): PrivilegedEntry[] {
  const out: PrivilegedEntry[] = [];
  for (const line of describe.split('\n')) {
    const m = /^(\S+) ("(?:[^"\\]|\\.)*"|\S+) ([0-7]+) /.exec(line);
    if (!m) continue;
    const [, type, rawPath, modeText] = m;
    const mode = parseInt(modeText!, 8);
    if (type === 'dir' || (mode & SETID_BITS) === 0) continue;
    const rel = rawPath!.startsWith('"') ? rawPath!.slice(1, -1).replace(/\\(.)/g, '$1') : rawPath!;
    out.push({ path: '/' + rel.replace(/^\/+/, ''), mode });
  }
  return out;
}

/** The setuid/setgid entries the allow-list does not name. */
export function disallowedSetid(entries: readonly PrivilegedEntry[], allowList: Readonly<Record<string, string>>): PrivilegedEntry[] {
  return entries.filter((e) => !Object.prototype.hasOwnProperty.call(allowList, e.path));
}

/** Fails with 'image-build-failed' naming every setuid/setgid file of the squashfs outside the allow-list. */
export async function checkSetidFiles(squashfs: string, allowList: Readonly<Record<string, string>>): Promise<PrivilegedEntry[]> {
  const tools = await requireTools([{ command: 'rdsquashfs', aptPackage: 'squashfs-tools-ng', purpose: 'check the guest root for setuid/setgid files' }]);
  const describe = await capture(tools.get('rdsquashfs')!, ['--describe', squashfs]);
  const entries = parseSetidEntries(describe);
  const bad = disallowedSetid(entries, allowList);
  if (bad.length > 0) {
    const list = bad.map((e) => `${e.path} (${e.mode.toString(8).padStart(5, '0')})`).join(', ');
    throw new VmHostError(
      'image-build-failed',
      `The guest image holds setuid/setgid files that vm-host/image/recipe.json's setuidAllowList does not name: ${list}. Remove them in customize.sh, or allow them there with a reason.`,
    );
  }
  return entries;
}

function capture(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(Buffer.concat(out).toString()) : reject(new Error(`${cmd} exited ${code}: ${err.trim()}`))));
  });
}
