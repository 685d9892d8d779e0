// Paths whose change runs code, or changes what a tool does, on the person's machine later: git
// hooks and config, shell start-up files, editor and agent configuration, CI workflows, a file that
// gains an execute bit. One list, here. Review marks such changes "runs on your machine" and Accept
// All and direct mode never write them without a confirmation that names each path. Anything under
// a `.git` folder never reaches the host at all (the agent may run git on its own copy in the VM).
//
// Starting point: the files and folders Anthropic's sandbox-runtime never lets a sandbox write
// (DANGEROUS_FILES / DANGEROUS_DIRECTORIES: .gitconfig, .gitmodules, shell rc files, .ripgreprc,
// .mcp.json, .vscode, .idea, .claude/commands|agents, .git/hooks, .git/config), widened to whole
// folders where a tool reads more than one file from them.
//
// Matching is by path segment, case-insensitive (macOS and Windows file systems are), after the
// characters those systems ignore or drop are removed: HFS+ ignorable code points (git's
// is_hfs_dotgit list), and trailing dots and spaces (Windows). A Windows 8.3 short name of a
// protected name ("GIT~1", "VSCODE~1") counts as that name.

import { readFileSync } from 'node:fs';

/** File names that are risky in any folder. */
const RISKY_NAMES: ReadonlyMap<string, string> = new Map([
  ['.gitconfig', 'git configuration (can run commands through aliases, core.fsmonitor, core.sshCommand…)'],
  ['.gitmodules', 'git submodules (can point git at other repositories and commands)'],
  ['.bashrc', 'shell start-up file'],
  ['.bash_profile', 'shell start-up file'],
  ['.bash_login', 'shell start-up file'],
  ['.bash_logout', 'shell start-up file'],
  ['.zshrc', 'shell start-up file'],
  ['.zshenv', 'shell start-up file'],
  ['.zprofile', 'shell start-up file'],
  ['.zlogin', 'shell start-up file'],
  ['.zlogout', 'shell start-up file'],
  ['.profile', 'shell start-up file'],
  ['.envrc', 'direnv runs it when you enter the folder'],
  ['.ripgreprc', 'ripgrep configuration (can run a preprocessor command)'],
  ['.npmrc', 'npm configuration (scripts, registry, tokens)'],
  ['.yarnrc', 'yarn configuration'],
  ['.yarnrc.yml', 'yarn configuration (yarnPath runs a script)'],
  ['.pnpmfile.cjs', 'pnpm runs it on install'],
  ['.mcp.json', 'agent configuration (MCP servers are commands)'],
  ['.claude.json', 'agent configuration'],
  ['.devcontainer.json', 'dev container configuration (runs commands on open)'],
  ['.pre-commit-config.yaml', 'pre-commit hooks configuration'],
  ['.gitlab-ci.yml', 'CI workflow (runs with the repository\'s secrets)'],
  ['lefthook.yml', 'git hooks configuration (lefthook)'],
  ['lefthook.yaml', 'git hooks configuration (lefthook)'],
  ['.lefthook.yml', 'git hooks configuration (lefthook)'],
  ['mise.toml', 'mise runs its tasks and hooks when you enter the folder'],
  ['.mise.toml', 'mise runs its tasks and hooks when you enter the folder'],
  ['.tool-versions', 'version manager configuration (which binaries run)'],
  ['.rprofile', 'R runs it at start-up'],
  ['.gemini.json', 'agent configuration'],
  ['.kiro.json', 'agent configuration'],
  ['gradle-wrapper.properties', 'the Gradle wrapper downloads and runs what it names'],
  ['maven-wrapper.properties', 'the Maven wrapper downloads and runs what it names'],
]);

/** Folders whose every file is risky, at any depth ([folder, subfolder…] must match consecutive segments). */
const RISKY_DIRS: readonly (readonly [readonly string[], string])[] = [
  [['.vscode'], 'VS Code workspace configuration (tasks, launch configurations, settings, extensions)'],
  [['.idea'], 'JetBrains IDE configuration (run configurations)'],
  [['.claude'], 'agent configuration (commands, hooks, settings)'],
  [['.cursor'], 'agent configuration'],
  [['.devcontainer'], 'dev container configuration (runs commands on open)'],
  [['.cowork'], 'Cowork guest setup (its script runs as root when the guest layer is built; asked again on change)'],
  [['.husky'], 'git hooks (husky)'],
  [['.githooks'], 'git hooks'],
  [['.github', 'workflows'], 'CI workflow (runs with the repository\'s secrets)'],
  [['.github', 'actions'], 'CI action (runs with the repository\'s secrets)'],
  [['.gemini'], 'agent configuration (MCP servers are commands)'],
  [['.amazonq'], 'agent configuration (MCP servers are commands)'],
  [['.kiro'], 'agent configuration (hooks, MCP servers)'],
  [['.codex'], 'agent configuration'],
  [['.continue'], 'agent configuration'],
  [['.windsurf'], 'agent configuration'],
  [['.zed'], 'Zed workspace configuration (tasks)'],
  [['.cargo'], 'cargo configuration (rustc-wrapper and runners are commands)'],
  [['.hg'], 'Mercurial configuration and hooks'],
  // when the workspace is (or holds) a home folder or a dotfiles repository
  [['.config'], 'per-user configuration of programs (shells, editors, VS Code user settings)'],
  [['.ssh'], 'ssh configuration (ProxyCommand runs a command)'],
  [['.aws'], 'AWS configuration (credential_process runs a command)'],
  [['.kube'], 'Kubernetes configuration (exec credential plugins run commands)'],
];

/** File name endings that are risky in any folder. */
const RISKY_SUFFIXES: readonly (readonly [string, string])[] = [['.code-workspace', 'VS Code workspace file (settings, tasks)']];

// Code points HFS+ ignores in names (git's is_hfs_dotgit), and other invisible ones.
const IGNORABLE = /[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u206a-\u206f\ufeff]/gu;

/** One path segment as a case-insensitive file system compares it. */
export function foldSegment(seg: Buffer | string): string {
  const t = (typeof seg === 'string' ? seg : seg.toString('utf8')).replace(IGNORABLE, '').normalize('NFC').toLowerCase();
  return t.replace(/[. ]+$/u, '') || t;
}

function segments(rel: Buffer | string): string[] {
  return (typeof rel === 'string' ? rel : rel.toString('utf8')).split('/').map(foldSegment);
}

/** A Windows 8.3 short name that may stand for `name` (".git" → "git~1"). */
function shortNameOf(seg: string, name: string): boolean {
  const m = /^([^~]{1,6})~[0-9]+$/u.exec(seg);
  if (!m) return false;
  return m[1] === name.replace(/[. ]/gu, '').slice(0, 6);
}

function isName(seg: string, name: string): boolean {
  return seg === name || shortNameOf(seg, name);
}

/** True for a path inside a `.git` folder (or the `.git` entry itself): it never reaches the host. */
export function isGitInternal(rel: Buffer | string): boolean {
  return segments(rel).some((s) => isName(s, '.git'));
}

/** Why a change at `rel` runs code or changes a tool on the host, judged by its path alone. */
export function riskOfPath(rel: Buffer | string): string | undefined {
  const segs = segments(rel);
  const last = segs[segs.length - 1] ?? '';
  for (const [name, why] of RISKY_NAMES) if (isName(last, name)) return why;
  for (const [suffix, why] of RISKY_SUFFIXES) if (last.endsWith(suffix)) return why;
  for (const [dir, why] of RISKY_DIRS) {
    for (let i = 0; i + dir.length < segs.length; i++) {
      if (dir.every((d, j) => isName(segs[i + j]!, d))) return why;
    }
  }
  return undefined;
}

export interface RiskInput {
  readonly path: Buffer;
  readonly kind: 'added' | 'modified' | 'deleted' | 'symlink' | 'mode';
  /** the agent's mode bits */
  readonly mode?: number;
}

/**
 * Why this change runs on the host (undefined: it does not): its path, or a file gaining an
 * execute bit (`hostMode`: the host file's mode, undefined when it has none). A deletion never
 * runs anything; a symlink is judged by its own path (where it points is checked by symlinks.ts).
 */
export function hostRisk(change: RiskInput, hostMode?: number): string | undefined {
  if (change.kind === 'deleted') return undefined;
  const byPath = riskOfPath(change.path);
  if (byPath) return byPath;
  if (change.kind === 'symlink') {
    // a link in place of such a folder (".vscode -> elsewhere") makes every file it leads to one of them
    const segs = segments(change.path);
    for (const [dir, why] of RISKY_DIRS) {
      for (let k = 1; k <= dir.length; k++) {
        const tail = segs.slice(-k);
        if (tail.length === k && tail.every((t, j) => isName(t, dir[j]!))) return `a link in place of a folder: ${why}`;
      }
    }
  }
  if (change.kind !== 'symlink' && change.mode !== undefined && (change.mode & 0o111) !== 0 && (hostMode === undefined || (hostMode & 0o111) === 0)) return 'becomes executable';
  return undefined;
}

/**
 * The process's umask, read without changing it where the system says it (Linux: /proc/self/
 * status); elsewhere set and put straight back (process.umask() without an argument is deprecated,
 * and there is no await in between for anything else to run).
 */
export function currentUmask(): number {
  try {
    const m = /^Umask:\s*([0-7]+)$/mu.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return parseInt(m[1]!, 8) & 0o777;
  } catch {
    // not Linux
  }
  const old = process.umask(0o077);
  process.umask(old);
  return old & 0o777;
}

/** The mode a file may have on the host: permission bits only (no setuid, setgid, sticky), within the umask. */
export function hostMode(mode: number | undefined, umask: number, fallback = 0o644): number {
  return (mode ?? fallback) & 0o777 & ~umask;
}
