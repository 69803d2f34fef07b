/**
 * Defaults for `qtest run`. Every path is relative to this file's folder; the QEMU binaries
 * can also be set with QEMU_IMG, QEMU_IO, QEMU_PROG and QSD_PROG in the environment, and the
 * folders with QTEST_SCENARIOS, QTEST_EXPECTED, QTEST_SCRATCH and QTEST_STATE (tests use these).
 */
export interface RunnerConfig {
  scenariosDir: string;
  expectedDir: string;
  filtersDir: string;
  /** Scratch space; each scenario gets its own TEST_DIR below it. */
  testDirRoot: string;
  defaultBackend: 'builtin' | 'qemu';
  /** QEMU version (major.minor) the unversioned expected/NNN.out files are recorded from. */
  referenceQemu: string;
  /** Where qtest keeps its memory between runs (last results, timings); QTEST_STATE moves it. */
  stateDir: string;
  imgfmt: string;
  imgproto: string;
  /** Options every qemu-io invocation gets before the scenario's own (iotests' QEMU_IO). */
  qemuIoOptions: string[];
  qemu: {
    img: string;
    io: string;
    system: string;
    storageDaemon: string;
    /** Which program serves QMP sessions on the qemu backend. */
    qmpVia: 'storage-daemon' | 'system';
  };
}

const env = process.env;

const config: RunnerConfig = {
  scenariosDir: env.QTEST_SCENARIOS ?? 'scenarios',
  expectedDir: env.QTEST_EXPECTED ?? 'expected',
  filtersDir: 'filters',
  testDirRoot: env.QTEST_SCRATCH ?? '.qtest/scratch',
  defaultBackend: 'builtin',
  referenceQemu: '7.2',
  stateDir: env.QTEST_STATE ?? '.qtest',
  imgfmt: 'qcow2',
  imgproto: 'file',
  qemuIoOptions: ['--cache', 'writeback', '--aio', 'threads'],
  qemu: {
    img: env.QEMU_IMG ?? 'qemu-img',
    io: env.QEMU_IO ?? 'qemu-io',
    system: env.QEMU_PROG ?? 'qemu-system-x86_64',
    storageDaemon: env.QSD_PROG ?? 'qemu-storage-daemon',
    qmpVia: env.QTEST_QMP_VIA === 'system' ? 'system' : 'storage-daemon',
  },
};

export default config;
