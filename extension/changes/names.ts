// File names as people see them: the exact bytes, made unambiguous. The agent chooses names, and a
// name can lie: invalid UTF-8 would turn into U+FFFD (two different files look alike), a right-to-
// left override (U+202E) reverses what follows ("gpj.exe" shown as "exe.jpg"), control characters
// and zero-width ones hide. Every such byte or character is shown as an escape instead: \xNN for a
// byte that is not UTF-8, \uXXXX for a control, bidi or invisible character, and a backslash as \\
// so an escape can never be faked by a name. Only the display is escaped: Accept and the diff's
// host side always use the raw bytes (Change.path), never a path rebuilt from this string.

// C0 and C1 controls, DEL, bidi controls and marks, zero-width and other invisible or separator
// characters, variation selectors, the replacement character itself (a name may contain it).
const ESCAPED_RANGES: readonly (readonly [number, number])[] = [
  [0x00, 0x1f], [0x7f, 0x9f], [0xad, 0xad], [0x34f, 0x34f], [0x61c, 0x61c], [0x115f, 0x1160], [0x17b4, 0x17b5], [0x180e, 0x180e],
  [0x200b, 0x200f], [0x2028, 0x202e], [0x2060, 0x206f], [0x3164, 0x3164], [0xfe00, 0xfe0f], [0xfeff, 0xfeff], [0xfff9, 0xfffd],
  [0xe0000, 0xe0fff],
];

function escapeChar(c: string): string {
  if (c === '\\') return '\\\\';
  const cp = c.codePointAt(0)!;
  if (!ESCAPED_RANGES.some(([lo, hi]) => cp >= lo && cp <= hi)) return c;
  return cp > 0xffff ? `\\u{${cp.toString(16).toUpperCase()}}` : `\\u${cp.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** Length of the valid UTF-8 sequence starting at b[i], or 0 when it is not one. */
function utf8Len(b: Buffer, i: number): number {
  const x = b[i]!;
  if (x < 0x80) return 1;
  const cont = (k: number): boolean => i + k < b.length && (b[i + k]! & 0xc0) === 0x80;
  if (x >= 0xc2 && x <= 0xdf) return cont(1) ? 2 : 0;
  if (x >= 0xe0 && x <= 0xef) {
    if (!cont(1) || !cont(2)) return 0;
    const y = b[i + 1]!;
    if (x === 0xe0 && y < 0xa0) return 0; // overlong
    if (x === 0xed && y >= 0xa0) return 0; // surrogate
    return 3;
  }
  if (x >= 0xf0 && x <= 0xf4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    const y = b[i + 1]!;
    if (x === 0xf0 && y < 0x90) return 0; // overlong
    if (x === 0xf4 && y >= 0x90) return 0; // beyond U+10FFFF
    return 4;
  }
  return 0;
}

/** A raw name (or path) for display: valid UTF-8 as text, everything misleading escaped. */
export function displayName(raw: Buffer): string {
  let out = '';
  let run = 0; // start of the current valid UTF-8 run
  let i = 0;
  const flush = (end: number): void => {
    if (end > run) for (const c of raw.subarray(run, end).toString('utf8')) out += escapeChar(c);
  };
  while (i < raw.length) {
    const n = utf8Len(raw, i);
    if (n === 0) {
      flush(i);
      out += `\\x${raw[i]!.toString(16).toUpperCase().padStart(2, '0')}`;
      i += 1;
      run = i;
    } else i += n;
  }
  flush(i);
  return out;
}

/** True when the display is the name itself (valid UTF-8, nothing escaped): then a file: URI of it names the same file. */
export function displayIsExact(raw: Buffer): boolean {
  return displayName(raw) === raw.toString('utf8') && Buffer.from(raw.toString('utf8'), 'utf8').equals(raw);
}
