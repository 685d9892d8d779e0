// Entry point the VS Code test runner loads inside the real extension host (extensionTestsPath).
// Runs the Mocha suite below and resolves or rejects; the workbench reports the result.
import Mocha from 'mocha';
import { registerSuite } from './suite';

export function run(): Promise<void> {
  const mocha = new Mocha({ ui: 'bdd', timeout: 300_000, color: false, reporter: 'spec' });
  mocha.suite.emit('pre-require', globalThis, 'in-host', mocha);
  registerSuite();
  return new Promise((resolve, reject) => {
    mocha.run((failures) => (failures ? reject(new Error(`${failures} in-host test(s) failed`)) : resolve()));
  });
}
