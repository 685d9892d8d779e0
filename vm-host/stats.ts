// Resource use of a VM's QEMU process as the host sees it (Linux /proc; undefined elsewhere).
import { readFile, stat } from 'node:fs/promises';

const CLK_TCK = 100;

export async function processStats(pid: number): Promise<{ rssBytes?: number; cpuSeconds?: number }> {
  if (process.platform !== 'linux') return {};
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
    const statLine = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = statLine.slice(statLine.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return { rssBytes: Number.isFinite(rssKb) ? rssKb * 1024 : undefined, cpuSeconds: Number.isFinite(ticks) ? ticks / CLK_TCK : undefined };
  } catch {
    return {};
  }
}

export async function allocatedBytes(file: string): Promise<number | undefined> {
  try {
    return (await stat(file)).blocks * 512;
  } catch {
    return undefined;
  }
}
