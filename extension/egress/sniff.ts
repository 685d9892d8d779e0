// Looks at the first bytes a client sends through an allowed tunnel to catch domain fronting: a
// TLS ClientHello's SNI, or a plain HTTP request's Host header, must name the host the tunnel was
// opened for.
export type Sniffed = { readonly kind: 'tls'; readonly sni?: string } | { readonly kind: 'http'; readonly host?: string } | { readonly kind: 'other' };

export function sniff(first: Buffer): Sniffed {
  if (first.length >= 6 && first[0] === 0x16 && first[1] === 0x03 && first[5] === 0x01) return { kind: 'tls', sni: parseSni(first) };
  const text = first.subarray(0, Math.min(first.length, 8192)).toString('latin1');
  if (/^[A-Z]{3,10} \S+ HTTP\/1\.[01]\r\n/.test(text)) {
    const m = /\r\nhost:[ \t]*([^\r\n]*)/i.exec(text);
    return { kind: 'http', host: m?.[1]?.trim() };
  }
  return { kind: 'other' };
}

/** SNI host name from a TLS ClientHello record (RFC 8446 §4.1.2, RFC 6066 §3), if present. */
export function parseSni(buf: Buffer): string | undefined {
  try {
    let p = 5; // record header
    if (buf[p] !== 0x01) return undefined; // handshake type ClientHello
    p += 4; // type + length
    p += 2 + 32; // version + random
    p += 1 + buf[p]!; // session id
    p += 2 + buf.readUInt16BE(p); // cipher suites
    p += 1 + buf[p]!; // compression methods
    const extEnd = p + 2 + buf.readUInt16BE(p);
    p += 2;
    while (p + 4 <= extEnd && p + 4 <= buf.length) {
      const type = buf.readUInt16BE(p);
      const len = buf.readUInt16BE(p + 2);
      p += 4;
      if (type === 0) {
        let q = p + 2; // server name list length
        while (q + 3 <= p + len) {
          const nameType = buf[q]!;
          const nameLen = buf.readUInt16BE(q + 1);
          if (nameType === 0) return buf.subarray(q + 3, q + 3 + nameLen).toString('ascii');
          q += 3 + nameLen;
        }
        return undefined;
      }
      p += len;
    }
  } catch {
    return undefined; // truncated hello: no SNI found
  }
  return undefined;
}

/** "example.com:443" or "example.com" → "example.com" (lower case). */
export function hostOnly(hostHeader: string): string {
  const h = hostHeader.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']'));
  const c = h.lastIndexOf(':');
  return c > 0 && h.indexOf(':') === c ? h.slice(0, c) : h;
}
