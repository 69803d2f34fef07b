// npm's install hook lands here when node-gyp could not build native/hostfs.c (no compiler,
// not Linux). qtest still works: src/storage/hostfs.ts falls back to portable behaviour.
process.stderr.write(
  'qtest: the native host-file helper (native/hostfs.c) did not build; falling back to portable file I/O\n' +
    '       (zero ranges are written, holes are guessed from contents, no fallocate preallocation).\n',
);
