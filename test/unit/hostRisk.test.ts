// The one list of paths that run code on the host, the mode mask, and how names are shown.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { currentUmask, hostMode, hostRisk, isGitInternal, riskOfPath } from '../../extension/changes/hostRisk';
import { displayIsExact, displayName } from '../../extension/changes/names';

const file = (p: string, mode = 0o644) => ({ path: Buffer.from(p), kind: 'added' as const, mode });

describe('hostRisk: paths that run code on the host', () => {
  it('marks the sandbox-runtime list and the issue\'s list, at any depth', () => {
    for (const p of ['.gitconfig', 'sub/.gitmodules', '.bashrc', 'home/.bash_profile', '.zshrc', '.zprofile', '.profile', '.envrc', 'a/b/.envrc', '.ripgreprc', '.npmrc', '.mcp.json', '.vscode/settings.json', '.vscode/tasks.json', 'pkg/.vscode/launch.json', '.vscode/extensions.json', '.idea/workspace.xml', '.idea/runConfigurations/x.xml', '.claude/settings.json', '.claude/commands/x.md', '.devcontainer/devcontainer.json', '.github/workflows/ci.yml', 'proj.code-workspace', '.husky/pre-commit']) {
      assert.ok(riskOfPath(p), p);
    }
  });

  it('matches case-insensitively, with the characters macOS and Windows ignore, and 8.3 short names', () => {
    for (const p of ['.VSCode/tasks.json', '.EnvRC', '.Claude/x', '.GITCONFIG', '.envrc.', '.envrc ', '.vs\u200ccode/tasks.json', 'VSCODE~1/tasks.json', '.GitHub/Workflows/x.yml']) assert.ok(riskOfPath(p), p);
    for (const p of ['.GIT/hooks/pre-commit', '.Git/config', '.git./config', '.g\u200cit/hooks/x', 'GIT~1/config', 'sub/.git/hooks/post-checkout', '.git']) assert.ok(isGitInternal(p), p);
  });

  it('leaves ordinary files alone', () => {
    for (const p of ['src/main.ts', 'README.md', 'vscode/tasks.json', '.github/CODEOWNERS', 'envrc', 'my.envrc.bak', 'docs/.gitconfig.md', 'claude/x']) assert.equal(riskOfPath(p), undefined, p);
    for (const p of ['src/git/x', '.gitignore', '.github/workflows/x', 'a.git/x']) assert.equal(isGitInternal(p), false, p);
  });

  it('marks a file that gains an execute bit, not one that had it', () => {
    assert.match(hostRisk(file('build.sh', 0o755)) ?? '', /executable/);
    assert.match(hostRisk({ path: Buffer.from('build.sh'), kind: 'mode', mode: 0o744 }, 0o644) ?? '', /executable/);
    assert.equal(hostRisk({ path: Buffer.from('build.sh'), kind: 'modified', mode: 0o755 }, 0o755), undefined);
    assert.equal(hostRisk(file('notes.txt')), undefined);
    assert.equal(hostRisk({ path: Buffer.from('.envrc'), kind: 'deleted' }), undefined, 'a deletion runs nothing');
    assert.match(hostRisk({ path: Buffer.from('.vscode'), kind: 'symlink', target: Buffer.from('evil') } as never) ?? '', /link in place of a folder/);
    assert.match(hostRisk({ path: Buffer.from('sub/.github'), kind: 'symlink' }) ?? '', /link in place of a folder/);
    assert.equal(hostRisk({ path: Buffer.from('docs'), kind: 'symlink' }), undefined);
  });

  it('masks modes to 0777 & ~umask: no setuid, setgid or sticky bit', () => {
    assert.equal(hostMode(0o4755, 0o022), 0o755);
    assert.equal(hostMode(0o6777, 0o022), 0o755);
    assert.equal(hostMode(0o1777, 0o077), 0o700);
    assert.equal(hostMode(0o666, 0o002), 0o664);
    assert.equal(hostMode(undefined, 0o022), 0o644);
    const before = process.umask(0o027);
    try {
      assert.equal(currentUmask(), 0o027);
      assert.equal(currentUmask(), 0o027, 'reading it does not change it');
    } finally {
      process.umask(before);
    }
  });
});

describe('names: the exact bytes, nothing hidden', () => {
  it('escapes invalid UTF-8 byte by byte', () => {
    assert.equal(displayName(Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x2e, 0x74, 0x78, 0x74])), 'caf\\xE9.txt');
    assert.equal(displayName(Buffer.from([0xc3, 0xa9])), 'é');
    assert.equal(displayName(Buffer.from([0xc0, 0xaf])), '\\xC0\\xAF', 'overlong');
    assert.equal(displayName(Buffer.from([0xed, 0xa0, 0x80])), '\\xED\\xA0\\x80', 'a surrogate');
    assert.equal(displayName(Buffer.from([0xe2, 0x82])), '\\xE2\\x82', 'truncated');
  });

  it('makes bidi, control and invisible characters visible, and a backslash unambiguous', () => {
    assert.equal(displayName(Buffer.from('invoice\u202Egpj.exe')), 'invoice\\u202Egpj.exe');
    assert.equal(displayName(Buffer.from('a\nb\tc\u0007')), 'a\\u000Ab\\u0009c\\u0007');
    assert.equal(displayName(Buffer.from('zero\u200Bwidth\u2066x\u2069')), 'zero\\u200Bwidth\\u2066x\\u2069');
    assert.equal(displayName(Buffer.from('a\\xE9')), 'a\\\\xE9', 'a literal backslash cannot pass for an escape');
    assert.equal(displayName(Buffer.from('\uFFFD')), '\\uFFFD');
  });

  it('shows ordinary names as they are', () => {
    for (const n of ['src/main.ts', 'données/été.txt', '日本語.md', 'emoji 🎉.txt']) {
      assert.equal(displayName(Buffer.from(n)), n);
      assert.ok(displayIsExact(Buffer.from(n)));
    }
    assert.equal(displayIsExact(Buffer.from([0xe9])), false);
    assert.equal(displayIsExact(Buffer.from('x\u202E')), false);
  });

  it('never maps two different names to one display', () => {
    const names = [Buffer.from([0xe9]), Buffer.from('\\xE9'), Buffer.from('é'), Buffer.from('\uFFFD'), Buffer.from([0xef, 0xbf, 0xbd]), Buffer.from('\\u202E'), Buffer.from('\u202E')];
    const shown = names.map(displayName);
    assert.equal(new Set(shown).size, new Set(names.map((n) => n.toString('hex'))).size);
  });
});

describe('risky paths found by a red-team read', () => {
  it('marks the guest setup a repository declares (its script runs as root when the layer is built)', () => {
    for (const p of ['.cowork/guest.json', '.COWORK/guest.json', '.cowork/setup.sh']) assert.ok(riskOfPath(p), `${p} runs on your machine`);
    assert.equal(riskOfPath('src/cowork/guest.json'), undefined, 'only the workspace root\'s .cowork');
  });

  it('covers agent, build-tool and per-user configuration that runs commands', () => {
    for (const p of ['.gemini/settings.json', '.amazonq/mcp.json', '.kiro/settings/mcp.json', '.codex/config.toml', '.continue/config.json', '.windsurf/rules', '.zed/tasks.json', '.cargo/config.toml', 'gradle/wrapper/gradle-wrapper.properties', '.mvn/wrapper/maven-wrapper.properties', 'lefthook.yml', 'mise.toml', '.Rprofile', '.hg/hgrc', '.config/Code/User/settings.json', '.config/fish/config.fish', '.ssh/config', '.aws/config', '.kube/config', '.gitlab-ci.yml']) {
      assert.ok(riskOfPath(p), `${p} runs on your machine`);
    }
    for (const p of ['src/config.ts', 'config/app.json', 'docs/cargo.md']) assert.equal(riskOfPath(p), undefined, p);
  });
});
