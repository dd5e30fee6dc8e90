/**
 * Compile-time check: `@rpcMethod` under `experimentalDecorators` (NestJS, TypeORM projects), in
 * test/types/tsconfig.legacy-decorators.json (and, unchanged, under standard decorators in
 * test/types/tsconfig.json). Run by test/decorators.spec.ts.
 */
import { Server, rpcMethod } from '../../lib/index.js';

class Calculator {
  factor = 2;
  @rpcMethod scale(x: number) {
    return x * this.factor;
  }
  @rpcMethod async add(a: number, b: number) {
    return a + b;
  }
  @rpcMethod static version() {
    return '1';
  }
  reset() {}
}

export function checks(server: Server): string[] {
  return [...server.registerService('calc', new Calculator()), ...server.registerService('tools', { upper: rpcMethod((s: string) => s.toUpperCase()) })];
}
