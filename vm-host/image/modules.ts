// Picks kernel modules and everything they depend on from a kernel's modules.dep, in load order.
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { VmHostError } from '../errors';

const norm = (name: string): string => name.replace(/-/g, '_');
const moduleName = (p: string): string => norm(path.basename(p).replace(/\.ko(\.(xz|zst|gz))?$/, ''));

export interface ModuleSet {
  /** Paths relative to lib/modules/<version>/, dependencies before dependants. */
  readonly ordered: string[];
  /** Requested names that are built into the kernel. */
  readonly builtin: string[];
}

export async function resolveModules(modulesDir: string, wanted: readonly string[]): Promise<ModuleSet> {
  const depText = await readFile(path.join(modulesDir, 'modules.dep'), 'utf8');
  let builtinText = '';
  try {
    builtinText = await readFile(path.join(modulesDir, 'modules.builtin'), 'utf8');
  } catch {
    // older kernels may not ship it
  }
  const deps = new Map<string, { file: string; deps: string[] }>();
  for (const line of depText.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const file = line.slice(0, colon).trim();
    const rest = line.slice(colon + 1).trim();
    deps.set(moduleName(file), { file, deps: rest ? rest.split(/\s+/) : [] });
  }
  const builtinNames = new Set(builtinText.split('\n').filter(Boolean).map(moduleName));

  const ordered: string[] = [];
  const seen = new Set<string>();
  const builtin: string[] = [];
  const visit = (name: string, chain: string[]): void => {
    const key = norm(name);
    if (seen.has(key)) return;
    seen.add(key);
    const entry = deps.get(key);
    if (!entry) {
      if (builtinNames.has(key)) {
        builtin.push(key);
        return;
      }
      throw new VmHostError('image-build-failed', `Kernel module ${name} (needed by ${chain.join(' → ') || 'the recipe'}) is neither a module nor built in.`);
    }
    for (const dep of entry.deps) visit(moduleName(dep), [...chain, name]);
    ordered.push(entry.file);
  };
  for (const name of wanted) visit(name, []);
  return { ordered, builtin };
}
