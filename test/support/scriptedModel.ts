// A local stand-in for the Anthropic Messages API, the one fake part of the tests (the real API
// cannot be reached here). It speaks the documented wire format: JSON or SSE (message_start,
// content_block_start, content_block_delta with text_delta / input_json_delta, content_block_stop,
// message_delta with stop_reason and usage, message_stop), error bodies with their status codes
// (400, 401, 429 with retry-after, 500, 529), and usage with cache_creation_input_tokens /
// cache_read_input_tokens computed from the request's cache_control breakpoints the way prompt
// caching behaves (a prefix seen before is read from cache). It plays a script of turns and records
// every request, so tests assert on what the extension sent.
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export type ScriptBlock = { readonly type: 'text'; readonly text: string } | { readonly type: 'tool_use'; readonly name: string; readonly input: unknown; readonly id?: string };

export type ScriptTurn =
  | { readonly kind: 'message'; readonly content: readonly ScriptBlock[]; readonly stopReason?: 'end_turn' | 'tool_use' | 'max_tokens'; readonly outputTokens?: number; readonly delayMs?: number; readonly chunkDelayMs?: number; readonly hangAfterStart?: boolean; readonly dropAfterEvents?: number }
  | { readonly kind: 'error'; readonly status: number; readonly type: string; readonly message: string; readonly retryAfter?: number }
  | { readonly kind: 'dynamic'; readonly respond: (req: RecordedRequest) => ScriptTurn };

export interface RecordedRequest {
  readonly path: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: {
    model: string;
    max_tokens: number;
    stream?: boolean;
    system?: unknown;
    tools?: unknown[];
    messages: { role: string; content: unknown }[];
  };
}

const ERROR_STATUS: Record<string, number> = { invalid_request_error: 400, authentication_error: 401, permission_error: 403, not_found_error: 404, rate_limit_error: 429, api_error: 500, overloaded_error: 529 };
export const errorTurn = (type: keyof typeof ERROR_STATUS, message: string, retryAfter?: number): ScriptTurn => ({ kind: 'error', status: ERROR_STATUS[type]!, type, message, retryAfter });
export const text = (t: string): ScriptBlock => ({ type: 'text', text: t });
export const toolUse = (name: string, input: unknown, id?: string): ScriptBlock => ({ type: 'tool_use', name, input, id });
export const say = (...content: ScriptBlock[]): ScriptTurn => ({ kind: 'message', content, stopReason: content.some((c) => c.type === 'tool_use') ? 'tool_use' : 'end_turn' });
/** A reply whose connection drops after `events` SSE events (a network failure mid-response). */
export const dropAfter = (events: number, ...content: ScriptBlock[]): ScriptTurn => ({ ...say(...content), dropAfterEvents: events } as ScriptTurn);

/** ~4 characters a token, as good an estimate as any for a stand-in. */
const tokens = (v: unknown): number => Math.ceil(JSON.stringify(v).length / 4);

/**
 * What the API says about an image block it cannot take (its documented limits: base64 source,
 * png/jpeg/gif/webp, at most 5 MB of base64, data that decodes as the type it claims), or undefined.
 */
function invalidImage(body: RecordedRequest['body']): string | undefined {
  const SIGNATURE: Record<string, string> = { 'image/png': '89504e47', 'image/jpeg': 'ffd8ff', 'image/gif': '474946', 'image/webp': '52494646' };
  for (const [i, m] of body.messages.entries()) {
    if (typeof m.content === 'string') continue;
    for (const [j, b] of (m.content as { type: string; source?: { type?: string; media_type?: string; data?: string } }[]).entries()) {
      if (b.type !== 'image') continue;
      const where = `messages.${i}.content.${j}.image.source`;
      if (b.source?.type !== 'base64') return `${where}: only base64 sources in this stand-in`;
      const signature = SIGNATURE[b.source.media_type ?? ''];
      if (!signature) return `${where}.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'`;
      if (!b.source.data || b.source.data.length > 5 * 1024 * 1024) return `${where}.base64: image exceeds 5 MB maximum`;
      if (!Buffer.from(b.source.data.slice(0, 16), 'base64').toString('hex').startsWith(signature)) return `${where}: Image does not match the provided media type ${b.source.media_type}`;
    }
  }
  return undefined;
}

export class ScriptedModel {
  readonly requests: RecordedRequest[] = [];
  /** per request: when it arrived and when its response was complete (performance.now()) */
  readonly timings: { arrivedAt: number; finishedAt?: number }[] = [];
  /** usage reported per request */
  readonly usages: { input_tokens: number; cache_creation_input_tokens: number; cache_read_input_tokens: number }[] = [];
  private readonly server: http.Server;
  private script: ScriptTurn[] = [];
  private readonly cachedPrefixes = new Set<string>();
  private seq = 0;
  /** open SSE responses, to tell whether a client aborted */
  aborted = 0;
  /** responses cut off by a `dropAfterEvents` step */
  dropped = 0;
  /** answers requests when the script is empty (the scripted demo uses it) */
  fallback: ((req: RecordedRequest) => ScriptTurn) | undefined;

  constructor() {
    this.server = http.createServer((req, res) => void this.handle(req, res));
  }

  async start(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  play(...turns: ScriptTurn[]): void {
    this.script.push(...turns);
  }

  clear(): void {
    this.script = [];
  }

  get pending(): number {
    return this.script.length;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let raw = '';
    for await (const c of req) raw += (c as Buffer).toString();
    if (req.method !== 'POST' || !req.url?.startsWith('/v1/messages')) {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ type: 'error', error: { type: 'not_found_error', message: `no route ${req.method} ${req.url}` } }));
      return;
    }
    const recorded: RecordedRequest = { path: req.url, headers: req.headers, body: JSON.parse(raw) as RecordedRequest['body'] };
    this.requests.push(recorded);
    const invalid = invalidImage(recorded.body);
    if (invalid) {
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ type: 'error', error: { type: 'invalid_request_error', message: invalid } }));
      return;
    }
    const timing: { arrivedAt: number; finishedAt?: number } = { arrivedAt: performance.now() };
    this.timings.push(timing);
    res.on('finish', () => (timing.finishedAt = performance.now()));
    let turn = this.script.shift() ?? this.fallback?.(recorded);
    if (!turn) {
      res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ type: 'error', error: { type: 'api_error', message: 'the script has no more turns' } }));
      return;
    }
    if (turn.kind === 'dynamic') turn = turn.respond(recorded);
    const requestId = `req_${++this.seq}`;
    if (turn.kind === 'error') {
      const headers: Record<string, string> = { 'content-type': 'application/json', 'request-id': requestId };
      if (turn.retryAfter !== undefined) headers['retry-after'] = String(turn.retryAfter);
      res.writeHead(turn.status, headers).end(JSON.stringify({ type: 'error', error: { type: turn.type, message: turn.message }, request_id: requestId }));
      return;
    }
    if (turn.kind === 'dynamic') throw new Error('a dynamic turn must return a message or an error');
    const usage = this.usage(recorded.body);
    this.usages.push(usage);
    const content = turn.content.map((b, i) => (b.type === 'tool_use' ? { type: 'tool_use' as const, id: b.id ?? `toolu_${this.seq}_${i}`, name: b.name, input: b.input } : b));
    const stopReason = turn.stopReason ?? 'end_turn';
    const outputTokens = turn.outputTokens ?? tokens(content);
    const message = { id: `msg_${this.seq}`, type: 'message', role: 'assistant', model: recorded.body.model, content, stop_reason: stopReason, stop_sequence: null, usage: { ...usage, output_tokens: outputTokens } };
    if (turn.delayMs) await sleep(turn.delayMs);
    if (!recorded.body.stream) {
      res.writeHead(200, { 'content-type': 'application/json', 'request-id': requestId }).end(JSON.stringify(message));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'request-id': requestId });
    let closed = false;
    res.on('close', () => {
      if (!res.writableFinished) {
        closed = true;
        this.aborted++;
      }
    });
    let sent = 0;
    const send = async (event: string, data: object): Promise<void> => {
      if (closed) return;
      if ('dropAfterEvents' in turn && turn.dropAfterEvents !== undefined && sent >= turn.dropAfterEvents) {
        // the connection drops mid-response (no message_stop): the socket is destroyed, as a network failure would
        closed = true;
        this.dropped++;
        res.socket?.destroy();
        return;
      }
      sent++;
      const chunk = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
      // before a drop, each event reaches the socket first, so the client has really received them
      if ('dropAfterEvents' in turn && turn.dropAfterEvents !== undefined) await new Promise<void>((r) => res.write(chunk, () => r()));
      else res.write(chunk);
      if ('chunkDelayMs' in turn && turn.chunkDelayMs) await sleep(turn.chunkDelayMs);
    };
    await send('message_start', { type: 'message_start', message: { ...message, content: [], stop_reason: null, usage: { ...usage, output_tokens: 1 } } });
    await send('ping', { type: 'ping' });
    for (const [index, block] of content.entries()) {
      if (block.type === 'text') {
        await send('content_block_start', { type: 'content_block_start', index, content_block: { type: 'text', text: '' } });
        if (turn.hangAfterStart) return; // keep the stream open until the client aborts
        for (const piece of chunks(block.text, 12)) await send('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'text_delta', text: piece } });
      } else {
        await send('content_block_start', { type: 'content_block_start', index, content_block: { type: 'tool_use', id: block.id, name: block.name, input: {} } });
        for (const piece of chunks(JSON.stringify(block.input), 20)) await send('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: piece } });
      }
      await send('content_block_stop', { type: 'content_block_stop', index });
    }
    await send('message_delta', { type: 'message_delta', delta: { stop_reason: stopReason, stop_sequence: null }, usage: { output_tokens: outputTokens } });
    await send('message_stop', { type: 'message_stop' });
    res.end();
  }

  /**
   * Prompt caching as the API does it: the request is the sequence tools → system → messages; a
   * cache_control marks a breakpoint; the longest marked prefix seen before is read from cache, the
   * rest up to the last breakpoint is written to it.
   */
  private usage(body: RecordedRequest['body']): { input_tokens: number; cache_creation_input_tokens: number; cache_read_input_tokens: number } {
    const parts: unknown[] = [...(body.tools ?? []), ...(Array.isArray(body.system) ? (body.system as unknown[]) : body.system ? [body.system] : [])];
    for (const m of body.messages) {
      if (typeof m.content === 'string') parts.push({ role: m.role, text: m.content });
      else for (const b of m.content as unknown[]) parts.push({ role: m.role, ...(b as object) });
    }
    const total = parts.reduce<number>((n, p) => n + tokens(stripCache(p)), 0);
    let read = 0;
    let lastBreak = 0;
    let upTo = 0;
    const h = createHash('sha256');
    const hashes: { at: number; hash: string }[] = [];
    for (const p of parts) {
      h.update(JSON.stringify(stripCache(p)));
      upTo += tokens(stripCache(p));
      if (p && typeof p === 'object' && 'cache_control' in p && (p as { cache_control?: unknown }).cache_control) {
        hashes.push({ at: upTo, hash: h.copy().digest('hex') });
        lastBreak = upTo;
      }
    }
    for (const { at, hash } of hashes) if (this.cachedPrefixes.has(hash)) read = Math.max(read, at);
    for (const { hash } of hashes) this.cachedPrefixes.add(hash);
    const written = Math.max(0, lastBreak - read);
    return { input_tokens: total - read - written, cache_creation_input_tokens: written, cache_read_input_tokens: read };
  }
}

function stripCache(p: unknown): unknown {
  if (!p || typeof p !== 'object') return p;
  const { cache_control: _c, ...rest } = p as Record<string, unknown>;
  return rest;
}

function* chunks(s: string, n: number): Generator<string> {
  for (let i = 0; i < s.length; i += n) yield s.slice(i, i + n);
  if (s.length === 0) yield '';
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
