// Entry point the VS Code test runner loads inside the real extension host (extensionTestsPath).
// Runs the Mocha suite below and resolves or rejects; the workbench reports the result. A run in
// which no test passed is a failure too (a suite that registered nothing must not look green).
import Mocha from 'mocha';
import { registerSuite } from './suite';

export function run(): Promise<void> {
  const mocha = new Mocha({ ui: 'bdd', timeout: 300_000, color: false, reporter: 'spec' });
  mocha.suite.emit('pre-require', globalThis, 'in-host', mocha);
  registerSuite();
  return new Promise((resolve, reject) => {
    const runner = mocha.run((failures) => {
      const passes = runner.stats?.passes ?? 0;
      if (failures) reject(new Error(`${failures} in-host test(s) failed`));
      else if (passes === 0) reject(new Error('no in-host test ran'));
      else resolve();
    });
  });
}
