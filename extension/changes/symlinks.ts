// Where a path really leads, before anything is written: resolved against a virtual tree, the host
// workspace overlaid by the task's change set, component by component, following every symlink in
// either (the person's and the agent's). Two links that each look harmless can leave the
// workspace together ("r -> ." and "s -> r/.."), and the person may accept them in any order or
// one at a time, so at every component where the host and the change set disagree both are
// tried: a path is safe only if it stays inside under every mix of accepted and pending changes.
//
// An agent symlink must also keep every other link safe later, whatever is accepted after it. Its
// target may therefore go up ("..") only at its start, and no further than its own folder's real
// depth; after the first name it only goes down. Going down from inside stays inside except
// through a link that leaves, and every agent link is held to this rule while the person's own
// links are resolved here, so a link can only ever lead into the workspace.
import { promises as fs } from 'node:fs';
import type { Change } from './changeSet';
import { displayName } from './names';
import { isGitInternal } from './hostRisk';

/** As many links as Linux follows in one path (MAXSYMLINKS). */
export const MAX_LINK_DEPTH = 40;
/** Resolution steps over all the mixes tried for one path. */
export const MAX_RESOLVE_STEPS = 20_000;

/** Where an agent's absolute link targets point (the workspace as the guest mounts it). */
export const GUEST_WORKSPACE = '/workspace';

type Node = { readonly type: 'dir' | 'file' | 'missing' } | { readonly type: 'symlink'; readonly target: Buffer };
const DIR: Node = { type: 'dir' };
const FILE: Node = { type: 'file' };
const MISSING: Node = { type: 'missing' };

/** Segments are raw bytes held as latin1 strings (one char per byte), so any name round-trips. */
type Segs = readonly string[];

export class UnsafeLinkError extends Error {
  override readonly name = 'UnsafeLinkError';
}

function segsOf(rel: Buffer): string[] {
  return rel.toString('latin1').split('/');
}

function show(segs: Segs): string {
  return displayName(Buffer.from(segs.join('/'), 'latin1')) || '.';
}

/**
 * A link target as components: how far up it goes first, then the names (refused: absolute
 * outside the workspace, ".." after a name, NUL, empty).
 */
export function parseLinkTarget(linkRel: Buffer, target: Buffer): { absolute: boolean; up: number; names: string[] } {
  const t = target.toString('latin1');
  const name = displayName(linkRel);
  if (t.length === 0 || t.includes('\0')) throw new UnsafeLinkError(`Refused the symlink ${name}: its target is empty or holds a NUL byte.`);
  let absolute = false;
  let parts = t.split('/');
  if (t.startsWith('/')) {
    if (t !== GUEST_WORKSPACE && !t.startsWith(`${GUEST_WORKSPACE}/`)) throw new UnsafeLinkError(`Refused the symlink ${name}: it points to ${displayName(target)}, outside the workspace.`);
    absolute = true;
    parts = t.slice(GUEST_WORKSPACE.length).split('/');
  }
  parts = parts.filter((p) => p !== '' && p !== '.');
  let up = 0;
  while (!absolute && parts[up] === '..') up++;
  const names = parts.slice(up);
  if (names.includes('..')) throw new UnsafeLinkError(`Refused the symlink ${name}: its target ${displayName(target)} goes up ("..") after a folder name, which another link could turn into a way out of the workspace.`);
  if (absolute && parts.includes('..')) throw new UnsafeLinkError(`Refused the symlink ${name}: its target ${displayName(target)} goes up ("..").`);
  return { absolute, up, names };
}

interface Alt {
  readonly node: Node;
  /** the host's children of this node count (it is a real folder on the host) */
  readonly hostOk: boolean;
}

interface Branch {
  cur: string[];
  /** hostOk of each element of cur (root: true) */
  ok: boolean[];
  rest: string[];
  links: number;
}

/** The host workspace with the task's changes laid over it. */
export class VirtualTree {
  private readonly changes = new Map<string, Change>();
  private readonly dirs = new Set<string>();
  private readonly hostCache = new Map<string, Promise<Node>>();
  private rootReal: Promise<string> | undefined;

  constructor(
    private readonly workspace: string,
    changes: readonly Change[],
  ) {
    for (const c of changes) {
      const segs = segsOf(c.path);
      this.changes.set(segs.join('/'), c);
      for (let i = 1; i < segs.length; i++) this.dirs.add(segs.slice(0, i).join('/'));
    }
  }

  private root(): Promise<string> {
    this.rootReal ??= fs.realpath(this.workspace);
    return this.rootReal;
  }

  /** The host's entry at a path whose every folder is a real folder on the host (never follows a link). */
  private host(segs: Segs): Promise<Node> {
    const key = segs.join('/');
    let hit = this.hostCache.get(key);
    if (!hit) {
      hit = (async (): Promise<Node> => {
        const p = Buffer.concat([Buffer.from(await this.root()), Buffer.from(`/${key}`, 'latin1')]);
        try {
          const st = await fs.lstat(p);
          if (st.isSymbolicLink()) return { type: 'symlink', target: await fs.readlink(p, { encoding: 'buffer' }) };
          return st.isDirectory() ? DIR : FILE;
        } catch {
          return MISSING;
        }
      })();
      this.hostCache.set(key, hit);
    }
    return hit;
  }

  private async alternatives(segs: Segs, hostOk: boolean): Promise<Alt[]> {
    const host = hostOk ? await this.host(segs) : MISSING;
    const key = segs.join('/');
    const c = this.changes.get(key);
    let over: Node = host;
    if (c?.kind === 'symlink') over = { type: 'symlink', target: c.target ?? Buffer.alloc(0) };
    else if (c && c.kind !== 'deleted') over = FILE;
    else if (this.dirs.has(key)) over = DIR;
    else if (c) over = MISSING;
    const alts: Alt[] = [{ node: host, hostOk: host.type === 'dir' }];
    const same = over.type === host.type && (over.type !== 'symlink' || (host.type === 'symlink' && over.target.equals(host.target)));
    if (!same) alts.push({ node: over, hostOk: over.type === 'dir' && host.type === 'dir' });
    return alts;
  }

  /**
   * Every place `rel` can lead to, as real paths relative to the workspace (no link in them),
   * under any mix of accepted and pending changes. `followLast`: follow a link in the last
   * component too (a folder, a link's target), or not (the entry a write replaces).
   */
  async places(rel: Segs, followLast: boolean, start: { cur: string[]; ok: boolean[] } = { cur: [], ok: [true] }, strict = true): Promise<string[][]> {
    const out = new Map<string, string[]>();
    const stack: Branch[] = [{ cur: [...start.cur], ok: [...start.ok], rest: [...rel], links: 0 }];
    let steps = 0;
    while (stack.length) {
      const b = stack.pop()!;
      if (++steps > MAX_RESOLVE_STEPS) throw new UnsafeLinkError(`Refused ${show(rel)}: its symlinks are too tangled to check (over ${MAX_RESOLVE_STEPS} steps).`);
      if (b.rest.length === 0) {
        out.set(b.cur.join('/'), b.cur);
        continue;
      }
      const [seg, ...rest] = b.rest as [string, ...string[]];
      if (seg === '' || seg === '.') {
        stack.push({ ...b, rest });
        continue;
      }
      if (seg === '..') {
        if (b.cur.length === 0) {
          if (!strict) continue;
          throw new UnsafeLinkError(`Refused ${show(rel)}: through its symlinks it leads out of the workspace.`);
        }
        stack.push({ cur: b.cur.slice(0, -1), ok: b.ok.slice(0, -1), rest, links: b.links });
        continue;
      }
      const next = [...b.cur, seg];
      for (const alt of await this.alternatives(next, b.ok[b.ok.length - 1]!)) {
        const node = alt.node;
        if (node.type === 'symlink' && (rest.length > 0 || followLast)) {
          if (b.links + 1 > MAX_LINK_DEPTH) throw new UnsafeLinkError(`Refused ${show(rel)}: more than ${MAX_LINK_DEPTH} symlinks in a row (a loop?).`);
          const t = node.target.toString('latin1');
          if (t.startsWith('/')) {
            if (t !== GUEST_WORKSPACE && !t.startsWith(`${GUEST_WORKSPACE}/`)) {
              if (!strict) continue;
              throw new UnsafeLinkError(`Refused ${show(rel)}: through the symlink ${show(next)} it leads to ${displayName(node.target)}, outside the workspace.`);
            }
            stack.push({ cur: [], ok: [true], rest: [...t.slice(GUEST_WORKSPACE.length).split('/'), ...rest], links: b.links + 1 });
          } else stack.push({ cur: b.cur, ok: b.ok, rest: [...t.split('/'), ...rest], links: b.links + 1 });
          continue;
        }
        if (node.type === 'file' && rest.length > 0) continue; // not a folder: this mix leads nowhere
        stack.push({ cur: next, ok: [...b.ok, node.type === 'dir' && alt.hostOk], rest, links: b.links });
      }
    }
    return [...out.values()];
  }

  /**
   * Where writing (or deleting) `rel` can land inside the workspace, under any mix (to judge what
   * it does there); refused when one is inside `.git`. A mix that leads out through one of the
   * person's links is not listed: the write itself refuses to follow such a link (apply.ts).
   */
  async destinations(rel: Buffer): Promise<Buffer[]> {
    const segs = segsOf(rel);
    const places = await this.places(segs, false, undefined, false);
    const out = places.map((p) => Buffer.from(p.join('/'), 'latin1'));
    for (const d of out) if (isGitInternal(d)) throw new UnsafeLinkError(`Refused ${displayName(rel)}: through a symlink it would be written to ${displayName(d)}, inside .git.`);
    return out;
  }

  /** The change-set entry at a path, if the agent changed it. */
  changeAt(segs: Segs): Change | undefined {
    return this.changes.get(segs.join('/'));
  }

  /**
   * Checks an agent symlink at `rel` pointing to `target`: inside under every mix, never into
   * `.git`. Returns every place the link can lead to (workspace-relative).
   */
  async checkLink(rel: Buffer, target: Buffer): Promise<Buffer[]> {
    const reached: Buffer[] = [];
    const { absolute, up, names } = parseLinkTarget(rel, target);
    const segs = segsOf(rel);
    const parents = absolute ? [[]] : await this.places(segs.slice(0, -1), true);
    for (const parent of parents) {
      if (up > parent.length) throw new UnsafeLinkError(`Refused the symlink ${displayName(rel)}: it points to ${displayName(target)}, outside the workspace.`);
      const base = parent.slice(0, parent.length - up);
      const ok = [true];
      // the folders of `base` are real folders in this mix; whether the host has them is asked again
      for (let i = 0; i < base.length; i++) ok.push((await this.host(base.slice(0, i + 1))).type === 'dir' && ok[i]!);
      const ends = await this.places(names, true, { cur: base, ok });
      for (const end of ends) {
        const place = Buffer.from(end.join('/'), 'latin1');
        if (isGitInternal(place)) throw new UnsafeLinkError(`Refused the symlink ${displayName(rel)}: it points into .git.`);
        reached.push(place);
      }
    }
    return reached;
  }
}
