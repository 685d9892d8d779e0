// A running guest as the rest of the engine sees it: the VM started by the vm-host helper, one SSH
// connection to it, the command agent on that connection, and SFTP for files.
import type { VmConnectInfo, VmStartParams } from '../protocol/vmHost';
import { GuestError } from './errors';
import { GuestAgent, type ExecOptions, type ExecResult } from './guestAgent';
import { GuestFiles } from './guestFiles';
import { SshConnection } from './sshConnection';
import { TcpTransport, type GuestTransport } from './transport';
import type { VmHostClient } from './vmHostClient';

export class GuestVm {
  private agent: GuestAgent;
  private files: GuestFiles;
  private readonly connectHooks: ((conn: SshConnection) => Promise<void>)[] = [];

  private constructor(
    private readonly client: VmHostClient,
    readonly info: VmConnectInfo,
    private conn: SshConnection,
    agent: GuestAgent,
    private readonly transport: GuestTransport,
  ) {
    this.agent = agent;
    this.files = new GuestFiles(conn);
  }

  static async start(client: VmHostClient, params: VmStartParams): Promise<GuestVm> {
    const info = await client.request('vm.start', params);
    try {
      return await GuestVm.attach(client, info);
    } catch (err) {
      await client.request('vm.stop', { vmId: info.vmId, graceMs: 0 }).catch(() => undefined);
      throw err;
    }
  }

  static async attach(client: VmHostClient, info: VmConnectInfo): Promise<GuestVm> {
    const transport = new TcpTransport(info.host, info.port);
    const conn = await connectWithRetry(transport, info);
    try {
      const agent = await GuestAgent.start(conn);
      return new GuestVm(client, info, conn, agent, transport);
    } catch (err) {
      conn.close();
      throw err;
    }
  }

  get id(): string {
    return this.info.vmId;
  }

  get connection(): SshConnection {
    return this.conn;
  }

  get fs(): GuestFiles {
    return this.files;
  }

  exec(argv: readonly (string | Buffer)[], opts?: ExecOptions): Promise<ExecResult> {
    return this.agent.exec(argv, opts);
  }

  /** The overlay's change set as changes.py prints it, scanned by the guest agent in-process. */
  changes(opts: { timeoutMs: number; maxOutputBytes: number }): Promise<ExecResult> {
    return this.agent.changes(opts);
  }

  /** Files of the upper dir, read by the guest agent by descriptor (guestAgent.ts readUpper). */
  readUpper(...args: Parameters<GuestAgent['readUpper']>): ReturnType<GuestAgent['readUpper']> {
    return this.agent.readUpper(...args);
  }

  /** Entries of the upper dir removed by the guest agent by descriptor (guestAgent.ts discardUpper). */
  discardUpper(...args: Parameters<GuestAgent['discardUpper']>): ReturnType<GuestAgent['discardUpper']> {
    return this.agent.discardUpper(...args);
  }

  /** Kills the task's sandbox and everything in it (GuestAgent.stopSandbox). */
  stopSandbox(key: string): Promise<void> {
    return this.agent.stopSandbox(key);
  }

  sh(script: string, opts?: ExecOptions): Promise<ExecResult> {
    return this.agent.sh(script, opts);
  }

  /** Runs now and again after every reconnect (for what lives on the connection). */
  async onConnected(hook: (conn: SshConnection) => Promise<void>): Promise<void> {
    this.connectHooks.push(hook);
    await hook(this.conn);
  }

  /** Re-establishes SSH and the agent after a dropped connection (the VM itself kept running). */
  async reconnect(): Promise<void> {
    this.conn.close();
    this.conn = await connectWithRetry(this.transport, this.info);
    this.agent = await GuestAgent.start(this.conn);
    this.files = new GuestFiles(this.conn);
    for (const hook of this.connectHooks) await hook(this.conn);
  }

  async stop(graceMs?: number): Promise<void> {
    // Flush the guest's page cache to the session disk before QEMU goes away.
    await this.agent.exec(['/bin/sync'], { timeoutMs: 5_000 }).catch(() => undefined);
    this.agent.close();
    this.conn.close();
    await this.client.request('vm.stop', { vmId: this.info.vmId, graceMs });
  }
}

export const CONNECT_ATTEMPTS = 5;
export const CONNECT_RETRY_MS = 500;

/**
 * The guest reports ready only once sshd listens (cowork-init waits for the socket), so the first
 * attempt normally succeeds; a host under heavy load can still drop a handshake. Retry
 * transport-level failures a few times; a wrong host key is never retried.
 */
async function connectWithRetry(transport: GuestTransport, info: VmConnectInfo): Promise<SshConnection> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await SshConnection.connect(transport, info);
    } catch (err) {
      if (!(err instanceof GuestError) || err.code !== 'connect-failed' || attempt >= CONNECT_ATTEMPTS) throw err;
      await new Promise((r) => setTimeout(r, CONNECT_RETRY_MS * attempt));
    }
  }
}
