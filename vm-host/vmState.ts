// VM lifecycle as a tagged union with one transition function. Illegal transitions throw, so a
// bug shows up where it happens instead of as a VM in an impossible state.
import type { VmStateName } from '../extension/protocol/vmHost';

export type VmState =
  | { readonly kind: 'stopped' }
  | { readonly kind: 'booting'; readonly since: number }
  | { readonly kind: 'ready'; readonly since: number; readonly bootMs: number }
  | { readonly kind: 'stopping'; readonly since: number }
  | { readonly kind: 'failed'; readonly error: string };

export type VmEvent =
  | { readonly type: 'start'; readonly at: number }
  | { readonly type: 'booted'; readonly at: number }
  | { readonly type: 'stop'; readonly at: number }
  | { readonly type: 'exited'; readonly reason?: string }
  | { readonly type: 'fail'; readonly error: string };

export class IllegalTransition extends Error {
  constructor(from: VmStateName, event: VmEvent['type']) {
    super(`VM cannot '${event}' while ${from}`);
  }
}

export function transition(state: VmState, event: VmEvent): VmState {
  switch (event.type) {
    case 'start':
      if (state.kind === 'stopped' || state.kind === 'failed') return { kind: 'booting', since: event.at };
      break;
    case 'booted':
      if (state.kind === 'booting') return { kind: 'ready', since: event.at, bootMs: event.at - state.since };
      break;
    case 'stop':
      if (state.kind === 'booting' || state.kind === 'ready') return { kind: 'stopping', since: event.at };
      if (state.kind === 'stopping') return state;
      break;
    case 'exited':
      // QEMU went away: expected while stopping, a failure otherwise.
      if (state.kind === 'stopping') return { kind: 'stopped' };
      if (state.kind === 'booting' || state.kind === 'ready') return { kind: 'failed', error: event.reason ?? 'the VM exited unexpectedly' };
      return state;
    case 'fail':
      if (state.kind !== 'stopped') return { kind: 'failed', error: event.error };
      break;
  }
  throw new IllegalTransition(state.kind, event.type);
}
