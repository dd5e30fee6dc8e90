/**
 * Service objects (aiozmq's AttrHandler): an object's methods exposed under a namespace, nested
 * objects as deeper names. Only methods that opt in are exposed: mark them with {@link rpcMethod},
 * as a decorator on a class method or as a wrapper around a function.
 *
 * @example
 * class Calculator {
 *   @rpcMethod add(a: number, b: number) { return a + b; }
 *   internal() {}                                  // not exposed
 * }
 * server.registerService('math', new Calculator()); // math.add
 */
import { RegistrationError } from './errors.js';
import { SOURCE_FUNCTION, type Handler, type RegistrationOptions, type Registry } from './registry.js';

const EXPOSED = Symbol('zeropeer.rpcMethod');

/**
 * Marks a method (as a decorator) or a function (as a call) as exposed by registerService. Works
 * as a standard (TC39) decorator and as a legacy one (`experimentalDecorators`, as in NestJS or
 * TypeORM projects), and as a wrapper: `rpcMethod((s: string) => s.toUpperCase())`.
 */
export function rpcMethod<F extends Handler>(fn: F, context?: ClassMethodDecoratorContext): F;
/** The legacy (`experimentalDecorators`) form: marks the method the descriptor holds. */
export function rpcMethod(target: object, propertyKey: string | symbol, descriptor: PropertyDescriptor): void;
export function rpcMethod(fn: unknown, contextOrKey?: unknown, descriptor?: PropertyDescriptor): unknown {
  if ((typeof contextOrKey === 'string' || typeof contextOrKey === 'symbol') && descriptor !== undefined) {
    mark(descriptor.value, String(contextOrKey));
    return undefined; // the descriptor, changed in place, stays
  }
  return mark(fn);
}

function mark(fn: unknown, name?: string): unknown {
  if (typeof fn !== 'function') throw new TypeError(name === undefined ? 'rpcMethod marks a function' : `rpcMethod marks a method; "${name}" is not one`);
  (fn as { [EXPOSED]?: boolean })[EXPOSED] = true;
  return fn;
}

function isExposed(value: unknown): value is Handler {
  return typeof value === 'function' && (value as { [EXPOSED]?: boolean })[EXPOSED] === true;
}

/** The property names of an object and its prototypes, up to (not including) Object.prototype. */
function propertyNames(object: object): string[] {
  const names = new Set<string>();
  for (let layer: object | null = object; layer && layer !== Object.prototype; layer = Object.getPrototypeOf(layer) as object | null) {
    for (const name of Object.getOwnPropertyNames(layer)) if (name !== 'constructor') names.add(name);
  }
  return [...names];
}

/**
 * Registers the exposed methods of `service` (bound to it) under `namespace`, and those of its
 * nested plain objects under deeper names. Returns the names registered.
 */
export function registerService(registry: Registry, namespace: string, service: object, options: Omit<RegistrationOptions, 'name'> = {}): string[] {
  if (service === null || typeof service !== 'object') throw new RegistrationError('registerService needs an object');
  const registered: string[] = [];
  const seen = new Set<object>();
  const walk = (prefix: string, object: object): void => {
    if (seen.has(object)) return;
    seen.add(object);
    for (const key of propertyNames(object)) {
      const value = (object as Record<string, unknown>)[key];
      const name = `${prefix}.${key}`;
      if (isExposed(value)) {
        const bound = Object.defineProperty(value.bind(object), SOURCE_FUNCTION, { value });
        registry.registerRpc(name, bound as Handler, options);
        registered.push(name);
      } else if (value !== null && typeof value === 'object' && Object.hasOwn(object, key)) {
        walk(name, value);
      }
    }
  };
  walk(namespace, service);
  if (registered.length === 0) {
    throw new RegistrationError(`no method of "${namespace}" is exposed: mark them with rpcMethod`);
  }
  return registered;
}
