/**
 * Root hooks for every spec file (loaded by .mocharc.json's `require`). In a parallel run each file
 * runs in a worker with a root suite of its own, so a root-level hook in one spec file no longer
 * covers the others; this plugin applies to all of them, in serial and parallel runs alike.
 */
import { cleanup } from './helpers.js';

/** Stops every peer and closes every socket a test made through the helpers, whatever it forgot. */
export const mochaHooks = {
  afterEach: cleanup,
};
