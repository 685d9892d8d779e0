export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function fmtMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`;
}

export function fmtBytes(b: number | undefined): string {
  return b === undefined ? 'n/a' : `${(b / 1048576).toFixed(0)} MiB`;
}

export interface Row {
  readonly what: string;
  readonly value: string;
  readonly note?: string;
}

export function printTable(title: string, rows: readonly Row[]): void {
  const w = Math.max(...rows.map((r) => r.what.length));
  console.log(`\n## ${title}`);
  for (const r of rows) console.log(`${r.what.padEnd(w)}  ${r.value}${r.note ? `   (${r.note})` : ''}`);
}
