// deactivate's bounded graceful shutdown: the steps (abort the turns, sync each guest, stop each
// VM) run in parallel and get `ms` in all; whatever is still running then is left to the helper,
// whose closed stdin stops every VM (and whose watchdog SIGKILLs any QEMU it leaves).
export interface ShutdownResult {
  /** every step settled within the bound */
  readonly inTime: boolean;
  /** steps that failed (their reason), for the log */
  readonly failures: string[];
}

export async function shutdownWithin(ms: number, steps: readonly (() => Promise<unknown>)[]): Promise<ShutdownResult> {
  const failures: string[] = [];
  const all = Promise.allSettled(steps.map((s) => s())).then((rs) => {
    for (const r of rs) if (r.status === 'rejected') failures.push(String(r.reason));
  });
  let timer: NodeJS.Timeout | undefined;
  const inTime = await Promise.race([all.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)))]);
  clearTimeout(timer);
  return { inTime, failures };
}
