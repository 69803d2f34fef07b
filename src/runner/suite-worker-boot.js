// Entry point of a `-j N` pool worker thread (pool.ts). Module hooks belong to the thread that
// registers them, so without this a worker would type-strip every module from scratch (about
// 0.7 s of CPU each); it installs the launcher's start-up caches first, then loads the worker.
import { installStartupCaches } from '../../bin/startup-cache.js';

installStartupCaches();
await import('./suite-worker.ts');
