// File access in the guest over SFTP on the VM's one SSH connection.
import type { SFTPWrapper, Stats } from 'ssh2';
import { GuestError } from './errors';
import type { SshConnection } from './sshConnection';

export class GuestFiles {
  private sftpPromise: Promise<SFTPWrapper> | undefined;

  constructor(private readonly conn: SshConnection) {}

  private sftp(): Promise<SFTPWrapper> {
    this.sftpPromise ??= this.conn.sftp().catch((err: unknown) => {
      this.sftpPromise = undefined;
      throw err;
    });
    return this.sftpPromise;
  }

  async readFile(path: string, opts: { maxBytes?: number } = {}): Promise<Buffer> {
    const sftp = await this.sftp();
    if (opts.maxBytes !== undefined) {
      const st = await this.stat(path);
      if (st.size > opts.maxBytes) throw new GuestError('file-error', `${path} is ${st.size} bytes, more than the ${opts.maxBytes} allowed.`);
    }
    return new Promise((resolve, reject) => {
      sftp.readFile(path, (err, data) => (err ? reject(fileError('read', path, err)) : resolve(data)));
    });
  }

  async writeFile(path: string, data: Buffer | string, opts: { mode?: number } = {}): Promise<void> {
    const sftp = await this.sftp();
    return new Promise((resolve, reject) => {
      sftp.writeFile(path, data, { mode: opts.mode ?? 0o644 }, (err) => (err ? reject(fileError('write', path, err)) : resolve()));
    });
  }

  async stat(path: string): Promise<Stats> {
    const sftp = await this.sftp();
    return new Promise((resolve, reject) => {
      sftp.lstat(path, (err, st) => (err ? reject(fileError('stat', path, err)) : resolve(st)));
    });
  }

  async exists(path: string): Promise<boolean> {
    try {
      await this.stat(path);
      return true;
    } catch {
      return false;
    }
  }
}

function fileError(op: string, path: string, err: Error & { code?: number | string }): GuestError {
  const reason = err.code === 2 ? 'no such file' : err.code === 3 ? 'permission denied' : err.message;
  return new GuestError('file-error', `Cannot ${op} ${path} in the guest: ${reason}`, { cause: err });
}
