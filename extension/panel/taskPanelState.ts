// What the panel shows for a task beyond its persisted transcript, kept on the host so a view that
// is hidden and shown again, reloaded, or opened in an editor tab gets all of it back: the blocked
// network requests (each judged: can the person allow it here, and if not, why), the output of
// tool calls as it streamed (stdout and stderr interleaved in arrival order), and the text the
// model is writing right now. The webview holds nothing the host cannot send again.
// No `vscode` here (unit-tested).
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { isIP } from 'node:net';
import type { LiveEvent } from '../agent/loop';
import { BlockedList, type EgressRecord } from '../egress/audit';
import { canonicalIp, classifyAddress } from '../egress/addresses';
import { hostOwnAddresses } from '../egress/policy';
import type { BlockedView, LiveSnapshot } from '../protocol/webview';
import { appendOutput, emptyOutput, type StreamedOutput } from './liveOutput';

/** Tool calls whose streamed output is kept per task (the latest; older cards show the result). */
export const KEEP_TOOL_OUTPUTS = 50;

/** Rules of refusals that are not about where the guest wanted to go: allowing a name cannot help. */
const NOT_A_DESTINATION: Record<string, string> = {
  'bad-host': 'not a valid destination',
  'bad-request': 'not a request the proxy understands',
  'host-mismatch': 'the request named another host than it connected to',
  'socks-command': 'a SOCKS command the proxy does not support',
  inspect: 'refused inside an allowed connection',
};

/**
 * Whether "Allow for this task" can help for a blocked request, and if not, why: the model API,
 * the denied list, loopback, link-local and cloud-metadata addresses and this machine's own
 * addresses are never reachable from the guest, whatever is allowed (extension/egress/addresses.ts).
 */
export function allowability(r: Pick<EgressRecord, 'host' | 'port' | 'rule' | 'reason'>, own: ReadonlySet<string> = hostOwnAddresses()): { canAllow: true } | { canAllow: false; why: string } {
  const rule = r.rule;
  if (rule.startsWith('model-api')) return { canAllow: false, why: 'the model API is never reachable from the task' };
  if (rule.startsWith('denied:')) return { canAllow: false, why: `${r.host} is on your denied list (setting cowork.network.deniedDomains)` };
  if (rule in NOT_A_DESTINATION) return { canAllow: false, why: NOT_A_DESTINATION[rule]! };
  if (rule === 'dns' || rule === 'connect') return { canAllow: false, why: 'already allowed: it failed to resolve or connect' };
  if (rule === 'address') return { canAllow: false, why: `${r.host} resolves to an address the task may never reach${r.reason ? ` (${r.reason.replace(/^.*?\(/, '').replace(/\)$/, '')})` : ''}` };
  if (!r.host || !/^[a-zA-Z0-9.-]+$/.test(r.host)) return { canAllow: false, why: 'not a host name that can be allowed' };
  if (isIP(r.host)) {
    const c = classifyAddress(r.host);
    if (c.range?.never) return { canAllow: false, why: `${c.reason}: never reachable from the task` };
    if (c.range && /loopback|link-local|unspecified|multicast|broadcast/.test(c.range.reason)) return { canAllow: false, why: `${c.reason}: never reachable from the task` };
    if ([...own].some((a) => canonicalIp(a) === c.effective)) return { canAllow: false, why: `${c.effective} is an address of this machine: never reachable from the task` };
  }
  return { canAllow: true };
}

interface ToolLive {
  readonly id: string;
  readonly name: string;
  readonly input: unknown;
  running: boolean;
  readonly output: StreamedOutput;
}

export class TaskPanelState {
  private readonly blockedList = new BlockedList(200);
  private readonly tools = new Map<string, ToolLive>();
  private text = '';

  constructor(private readonly own: () => ReadonlySet<string> = hostOwnAddresses) {}

  onLive(e: LiveEvent): void {
    switch (e.type) {
      case 'text_delta':
        this.text += e.text;
        return;
      case 'tool_start': {
        this.text = '';
        const t = this.tools.get(e.id);
        if (t) t.running = true;
        else this.tools.set(e.id, { id: e.id, name: e.name, input: e.input, running: true, output: emptyOutput() });
        while (this.tools.size > KEEP_TOOL_OUTPUTS) this.tools.delete(this.tools.keys().next().value!);
        return;
      }
      case 'tool_output': {
        const t = this.tools.get(e.id);
        if (t) appendOutput(t.output, e.chunk, e.stream);
        return;
      }
      case 'transcript':
        if (e.event.type === 'assistant' || e.event.type === 'stopped') this.text = '';
        if (e.event.type === 'tool_result') {
          const t = this.tools.get(e.event.toolUseId);
          if (t) t.running = false;
        }
        if (e.event.type === 'stopped' || e.event.type === 'done') for (const t of this.tools.values()) t.running = false;
        return;
      case 'turn_end':
        for (const t of this.tools.values()) t.running = false;
        return;
      default:
        return;
    }
  }

  /**
   * Reads the denials of an earlier session from the task's egress audit log (its last `maxBytes`),
   * so a window reload (a new extension host) still lists them. A missing or unreadable log is no list.
   */
  loadAudit(file: string, maxBytes = 256 * 1024): void {
    let text = '';
    try {
      const fd = openSync(file, 'r');
      try {
        const size = fstatSync(fd).size;
        const len = Math.min(size, maxBytes);
        const buf = Buffer.alloc(len);
        readSync(fd, buf, 0, len, size - len);
        text = buf.toString('utf8');
        if (len < size) text = text.slice(text.indexOf('\n') + 1); // a partial first line
      } finally {
        closeSync(fd);
      }
    } catch {
      return;
    }
    for (const line of text.split('\n')) {
      if (!line) continue;
      try {
        const r = JSON.parse(line) as EgressRecord;
        if (r && r.allowed === false && typeof r.host === 'string' && typeof r.port === 'number' && typeof r.rule === 'string' && typeof r.time === 'string') this.onEgress(r);
      } catch {
        // a line cut by a crash: skip it
      }
    }
  }

  onEgress(r: EgressRecord): boolean {
    if (r.allowed) return false;
    this.blockedList.add(r);
    return true;
  }

  blocked(): { items: BlockedView[]; total: number } {
    const own = this.own();
    return {
      total: this.blockedList.total,
      items: this.blockedList.recent.map((r) => {
        const a = allowability(r, own);
        return { host: r.host, port: r.port, rule: r.rule, reason: r.reason, time: r.time, count: r.count ?? 1, canAllow: a.canAllow, why: a.canAllow ? undefined : a.why };
      }),
    };
  }

  live(): LiveSnapshot {
    return {
      text: this.text,
      tools: [...this.tools.values()].map((t) => ({ id: t.id, name: t.name, input: t.input, running: t.running, output: t.output })),
    };
  }
}
