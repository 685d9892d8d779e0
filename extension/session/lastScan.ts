// The last change scan of a task, as persisted in its storage (last-scan.json): enough to list the
// task's pending changes in Source Control, the panel and the status bar right after a window
// reload, before its VM is up to scan again. Paths and symlink targets are raw bytes (base64).
import { z } from 'zod';
import type { Change } from '../changes/changeSet';

const Entry = z.object({
  path: z.string(),
  kind: z.enum(['added', 'modified', 'deleted', 'symlink', 'mode']),
  size: z.number().optional(),
  sha256: z.string().optional(),
  mode: z.number().optional(),
  target: z.string().optional(),
  existed: z.boolean().optional(),
});
const Json = z.object({ version: z.literal(1), at: z.number(), changes: z.array(Entry) });

export interface PersistedScan {
  /** when it was scanned (ms since the epoch) */
  readonly at: number;
  readonly changes: readonly Change[];
}

export const LastScan = {
  parse(v: unknown): PersistedScan {
    const j = Json.parse(v);
    return {
      at: j.at,
      changes: j.changes.map((c) => {
        const p = Buffer.from(c.path, 'base64');
        return { path: p, display: p.toString('utf8'), kind: c.kind, size: c.size, sha256: c.sha256, mode: c.mode, target: c.target === undefined ? undefined : Buffer.from(c.target, 'base64'), existed: c.existed };
      }),
    };
  },
  toJson(scan: PersistedScan): z.infer<typeof Json> {
    return {
      version: 1,
      at: scan.at,
      changes: scan.changes.map((c) => ({ path: c.path.toString('base64'), kind: c.kind, size: c.size, sha256: c.sha256, mode: c.mode, target: c.target?.toString('base64'), existed: c.existed })),
    };
  },
  fromChanges(changes: readonly Change[], at = Date.now()): PersistedScan {
    return { at, changes: [...changes] };
  },
};
